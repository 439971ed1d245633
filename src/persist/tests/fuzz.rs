//! Property-based fuzzing (`fuzz_*`) of the on-disk formats: segment and
//! snapshot headers, record framing, and recovery of a segment built from
//! valid records and then cut or damaged.

use super::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A segment: header, then the framed payloads; with each record's offset.
fn segment(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut b = format::segment_header(1).to_vec();
    let mut at = Vec::new();
    for p in payloads {
        at.push(b.len());
        format::encode_record(&mut b, p);
    }
    (b, at)
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..8)
}

proptest! {
    #![proptest_config(config(2000))]

    /// Any bytes as a segment header, a snapshot, or records: an answer,
    /// never a panic, and every range returned lies inside the input.
    #[test]
    fn fuzz_format_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..200), at in 0usize..220) {
        let _ = format::parse_segment_header(&b);
        if let Ok((_, r)) = format::parse_snapshot(&b) {
            prop_assert!(r.end <= b.len());
        }
        if let Ok(r) = format::record_at(&b, at) {
            prop_assert!(r.start >= at && r.end <= b.len());
        }
        let scan = format::scan_records(&b);
        prop_assert!(scan.valid_len <= b.len());
        for r in &scan.records {
            prop_assert!(r.end <= scan.valid_len);
        }
        if let Some(p) = format::valid_record_after(&b, at) {
            prop_assert!(p >= at && format::record_at(&b, p).is_ok());
        }
    }

    /// A segment header parses back to its LSN; any flipped bit, and any
    /// truncation, is refused.
    #[test]
    fn fuzz_segment_header_round_trip(lsn in any::<u64>(), at in 0..format::SEGMENT_HEADER, bit in 0..8u8, cut in 0..format::SEGMENT_HEADER) {
        let h = format::segment_header(lsn);
        prop_assert_eq!(format::parse_segment_header(&h), Ok(lsn));
        let mut bad = h;
        bad[at] ^= 1 << bit;
        prop_assert!(format::parse_segment_header(&bad).is_err());
        prop_assert!(format::parse_segment_header(&h[..cut]).is_err());
    }

    /// A snapshot parses back to what it covers and its image; a flipped bit
    /// anywhere, a cut, or an extra byte is refused.
    #[test]
    fn fuzz_snapshot_round_trip(
        covers in any::<u64>(),
        image in proptest::collection::vec(any::<u8>(), 0..100),
        at in any::<prop::sample::Index>(),
        bit in 0..8u8,
        extra in any::<u8>(),
    ) {
        let mut file = format::snapshot_header(covers, &image).to_vec();
        file.extend_from_slice(&image);
        let (got, range) = format::parse_snapshot(&file).unwrap();
        prop_assert_eq!(got, covers);
        prop_assert_eq!(&file[range], &image[..]);
        let i = at.index(file.len());
        let mut bad = file.clone();
        bad[i] ^= 1 << bit;
        prop_assert!(format::parse_snapshot(&bad).is_err(), "flip at {}", i);
        prop_assert!(format::parse_snapshot(&file[..i]).is_err(), "cut at {}", i);
        let mut longer = file.clone();
        longer.push(extra);
        prop_assert!(format::parse_snapshot(&longer).is_err());
    }

    /// Framed records scan back exactly; a flipped bit inside a record is
    /// caught by its CRC at that record's offset, and what is before it is kept.
    #[test]
    fn fuzz_record_framing(ps in payloads(), which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), bit in 0..8u8) {
        let (b, offsets) = segment(&ps);
        let scan = format::scan_records(&b);
        prop_assert!(scan.damage.is_none());
        prop_assert_eq!(scan.valid_len, b.len());
        let got: Vec<&[u8]> = scan.records.iter().map(|r| &b[r.clone()]).collect();
        let want: Vec<&[u8]> = ps.iter().map(|p| &p[..]).collect();
        prop_assert_eq!(got, want);

        let k = which.index(ps.len());
        let len = format::RECORD_HEADER + ps[k].len();
        let i = offsets[k] + at.index(len);
        let mut bad = b.clone();
        bad[i] ^= 1 << bit;
        prop_assert!(format::record_at(&bad, offsets[k]).is_err(), "flip at {}", i);
        let scan = format::scan_records(&bad);
        prop_assert_eq!(scan.records.len(), k);
        prop_assert_eq!(scan.valid_len, offsets[k]);
        let (_, followed) = scan.damage.expect("damage is reported");
        prop_assert_eq!(followed, k + 1 < ps.len(), "a later record is found after the damage");
    }

    /// A cut anywhere keeps exactly the records wholly before it, and is a
    /// torn tail (nothing valid follows).
    #[test]
    fn fuzz_record_truncation(ps in payloads(), cut in any::<prop::sample::Index>()) {
        let (b, offsets) = segment(&ps);
        let c = format::SEGMENT_HEADER + cut.index(b.len() - format::SEGMENT_HEADER + 1);
        let scan = format::scan_records(&b[..c]);
        let whole = offsets.iter().zip(&ps).filter(|(o, p)| *o + format::RECORD_HEADER + p.len() <= c).count();
        prop_assert_eq!(scan.records.len(), whole);
        if let Some((_, followed)) = scan.damage {
            prop_assert!(!followed);
        }
    }

    /// Length fields claiming up to 4 GiB in a short file are refused without
    /// reading or allocating what they claim.
    #[test]
    fn fuzz_record_huge_length(len in any::<u32>(), rest in proptest::collection::vec(any::<u8>(), 4..64)) {
        let mut b = format::segment_header(1).to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&rest);
        let r = format::record_at(&b, format::SEGMENT_HEADER);
        if len as usize > rest.len() - 4 {
            prop_assert!(r.is_err());
        }
    }
}

/// Recovery of a real log whose last segment is cut or has a flipped bit:
/// a cut (torn tail) keeps the records before it and starts; a flipped bit
/// in a record before the last is refused as damage at that record's offset.
#[test]
fn fuzz_recovery_of_a_mutated_segment() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = 6u64;
    let (fs, seg, bytes) = rt.block_on(async {
        let fs = FaultFs::new();
        let (log, _) = open_ok(&fs);
        write(&log, 1..=n).await;
        log.close().await.unwrap();
        let seg = segments(&fs).pop().unwrap();
        let mut bytes = fs.bytes(&seg).unwrap();
        bytes.truncate(format::scan_records(&bytes).valid_len);
        (fs, seg, bytes)
    });
    let mut offsets = vec![format::SEGMENT_HEADER];
    for i in 1..=n {
        offsets.push(offsets.last().unwrap() + format::RECORD_HEADER + rec(i).len());
    }
    let cfg = config(256);
    let mut runner = proptest::test_runner::TestRunner::new(cfg);
    runner
        .run(
            &(
                format::SEGMENT_HEADER..=bytes.len(),
                any::<prop::sample::Index>(),
                0..8u8,
            ),
            |(cut, flip, bit)| {
                rt.block_on(async {
                    // The cut: the whole records before it survive.
                    let whole = offsets[1..].iter().filter(|&&end| end <= cut).count() as u64;
                    let damaged = with_file(&fs, &seg, bytes[..cut].to_vec());
                    let (_, r) = open_ok(&damaged);
                    assert_records(&r, 1..=whole);
                    prop_assert!(r.warnings.len() <= 1, "{:?}", r.warnings);

                    // The flip: in record k (0-based).
                    let i =
                        format::SEGMENT_HEADER + flip.index(bytes.len() - format::SEGMENT_HEADER);
                    let k = offsets.iter().rposition(|&o| o <= i).unwrap();
                    let mut bad = bytes.clone();
                    bad[i] ^= 1 << bit;
                    let damaged = with_file(&fs, &seg, bad);
                    match open(&damaged, opts(FsyncMode::Always)) {
                        Ok((_, r)) => {
                            prop_assert_eq!(k as u64, n - 1, "only the last record may be torn");
                            assert_records(&r, 1..=k as u64);
                        }
                        Err(PersistError::Corrupt { offset, file, .. }) => {
                            prop_assert_eq!(&file, &seg);
                            prop_assert_eq!(offset, offsets[k] as u64, "flip at {}", i);
                        }
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                    Ok(())
                })
            },
        )
        .unwrap();
}

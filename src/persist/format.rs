//! The on-disk formats: file names, the segment and snapshot headers, and
//! record framing. All integers are little-endian.
//!
//! ```text
//! segment  wal-<seq:020>.log   header: "KPWALSEG" | version u32 | first_lsn u64 | crc32 u32   (24 bytes)
//!                              then records: len u32 | crc32(len ++ payload) u32 | payload
//! snapshot snap-<lsn:020>.bin  header: "KPSNAPSH" | version u32 | covers u64 | len u64 | crc32 u32  (32 bytes)
//!                              then the image; the CRC covers the header fields before it and the image
//! ```
//!
//! A record's LSN is implicit: the segment's `first_lsn` plus its index in the
//! segment. Records are never empty, so a zero length marks a zero-filled tail.

use std::path::{Path, PathBuf};

use super::Lsn;

/// Format version written in every header; anything else is refused.
pub const VERSION: u32 = 1;
/// Magic bytes that open a log segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"KPWALSEG";
/// Magic bytes that open a snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"KPSNAPSH";
/// Length of a segment header.
pub const SEGMENT_HEADER: usize = 24;
/// Length of a snapshot header.
pub const SNAPSHOT_HEADER: usize = 32;
/// Length of a record's frame (length + CRC) before its payload.
pub const RECORD_HEADER: usize = 8;
/// The largest record payload accepted (and believed when reading).
pub const MAX_RECORD: usize = crate::codec::MAX_RECORD;

/// The file name of segment number `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("wal-{seq:020}.log")
}

/// The file name of the snapshot covering `lsn`.
pub fn snapshot_name(lsn: Lsn) -> String {
    format!("snap-{lsn:020}.bin")
}

/// What a file in the data directory is, judged by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// A log segment and its sequence number.
    Segment(u64),
    /// A snapshot and the LSN it covers.
    Snapshot(Lsn),
    /// A temporary file left by a crash mid-write; safe to delete.
    Temporary,
    /// Anything else (kept copies of damaged files, foreign files): left alone.
    Other,
}

/// Classifies a path by its file name.
pub fn classify(path: &Path) -> FileKind {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return FileKind::Other;
    };
    if name.ends_with(".tmp") && (name.starts_with("wal-") || name.starts_with("snap-")) {
        return FileKind::Temporary;
    }
    let number = |prefix: &str, suffix: &str| -> Option<u64> {
        let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    if let Some(seq) = number("wal-", ".log") {
        FileKind::Segment(seq)
    } else if let Some(lsn) = number("snap-", ".bin") {
        FileKind::Snapshot(lsn)
    } else {
        FileKind::Other
    }
}

/// `<path>.tmp`, where a file is written before it is renamed into place.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The header of a segment whose first record has LSN `first_lsn`.
pub fn segment_header(first_lsn: Lsn) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Parses a segment header, returning its first LSN or why it is not one.
pub fn parse_segment_header(b: &[u8]) -> Result<Lsn, String> {
    if b.len() < SEGMENT_HEADER {
        return Err(format!(
            "header is {} bytes, expected {SEGMENT_HEADER}",
            b.len()
        ));
    }
    if &b[..8] != SEGMENT_MAGIC {
        return Err("not a keypool log segment (bad magic)".into());
    }
    let crc = u32_at(b, 20).unwrap_or_default();
    if crc32fast::hash(&b[..20]) != crc {
        return Err("header CRC mismatch".into());
    }
    let version = u32_at(b, 8).unwrap_or_default();
    if version != VERSION {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    u64_at(b, 12).ok_or_else(|| "short header".to_string())
}

/// Appends one framed record to `out`.
pub fn encode_record(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why [`record_at`] finds no record where only zeros follow: the end of the
/// records of a segment whose tail was filled with zeros ahead of them.
pub const ZERO_TAIL: &str = "zero-filled tail";

/// Reads the record framed at `at`: its payload range, or why there is none.
pub fn record_at(b: &[u8], at: usize) -> Result<std::ops::Range<usize>, &'static str> {
    let rest = b.len().saturating_sub(at);
    if rest < RECORD_HEADER {
        return Err("short record header");
    }
    let len = u32_at(b, at).unwrap_or_default() as usize;
    if len == 0 {
        // `scan_records` tells a zero tail from a zero length in one pass;
        // checking here would make the search for a later record quadratic.
        return Err("zero record length");
    }
    if len > MAX_RECORD {
        return Err("impossible record length");
    }
    if rest - RECORD_HEADER < len {
        return Err("record runs past the end of the file");
    }
    let crc = u32_at(b, at + 4).unwrap_or_default();
    let payload = at + RECORD_HEADER..at + RECORD_HEADER + len;
    let mut h = crc32fast::Hasher::new();
    h.update(&b[at..at + 4]);
    h.update(&b[payload.clone()]);
    if h.finalize() != crc {
        return Err("record CRC mismatch");
    }
    Ok(payload)
}

/// Is there any valid record starting somewhere in `b[from..]`? Used to tell a
/// torn tail (nothing valid follows the damage) from damage in the middle.
pub fn valid_record_after(b: &[u8], from: usize) -> Option<usize> {
    (from..b.len().saturating_sub(RECORD_HEADER - 1)).find(|&p| record_at(b, p).is_ok())
}

/// The result of reading a segment's records.
#[derive(Debug, Default)]
pub struct Scan {
    /// Payload ranges of the valid records, in order.
    pub records: Vec<std::ops::Range<usize>>,
    /// Where the valid records end.
    pub valid_len: usize,
    /// If the records do not run cleanly to the end: why, and whether a valid
    /// record follows the damage (so it is not a torn tail).
    pub damage: Option<(&'static str, bool)>,
}

/// Reads the records of a segment body (everything after the header).
pub fn scan_records(b: &[u8]) -> Scan {
    let mut scan = Scan {
        valid_len: SEGMENT_HEADER.min(b.len()),
        ..Scan::default()
    };
    let mut at = SEGMENT_HEADER;
    while at < b.len() {
        match record_at(b, at) {
            Ok(r) => {
                at = r.end;
                scan.records.push(r);
                scan.valid_len = at;
            }
            Err(_) if b[at..].iter().all(|&x| x == 0) => {
                scan.damage = Some((ZERO_TAIL, false));
                break;
            }
            Err(why) => {
                let followed = valid_record_after(b, at + 1).is_some();
                scan.damage = Some((why, followed));
                break;
            }
        }
    }
    scan
}

/// The header of a snapshot of `image` that covers `covers`.
pub fn snapshot_header(covers: Lsn, image: &[u8]) -> [u8; SNAPSHOT_HEADER] {
    let mut h = [0u8; SNAPSHOT_HEADER];
    h[..8].copy_from_slice(SNAPSHOT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&covers.to_le_bytes());
    h[20..28].copy_from_slice(&(image.len() as u64).to_le_bytes());
    let mut c = crc32fast::Hasher::new();
    c.update(&h[..28]);
    c.update(image);
    h[28..32].copy_from_slice(&c.finalize().to_le_bytes());
    h
}

/// Checks a snapshot file and returns the LSN it covers and its image range.
pub fn parse_snapshot(b: &[u8]) -> Result<(Lsn, std::ops::Range<usize>), String> {
    if b.len() < SNAPSHOT_HEADER {
        return Err(format!("{} bytes, shorter than the header", b.len()));
    }
    if &b[..8] != SNAPSHOT_MAGIC {
        return Err("not a keypool snapshot (bad magic)".into());
    }
    let version = u32_at(b, 8).unwrap_or_default();
    if version != VERSION {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    let covers = u64_at(b, 12).unwrap_or_default();
    let len = u64_at(b, 20).unwrap_or_default();
    if len != (b.len() - SNAPSHOT_HEADER) as u64 {
        return Err(format!(
            "header says {len} bytes of image, the file holds {}",
            b.len() - SNAPSHOT_HEADER
        ));
    }
    let mut c = crc32fast::Hasher::new();
    c.update(&b[..28]);
    c.update(&b[SNAPSHOT_HEADER..]);
    if c.finalize() != u32_at(b, 28).unwrap_or_default() {
        return Err("CRC mismatch".into());
    }
    Ok((covers, SNAPSHOT_HEADER..b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        let mut b = segment_header(7).to_vec();
        for p in payloads {
            encode_record(&mut b, p);
        }
        b
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(1), "wal-00000000000000000001.log");
        assert_eq!(
            classify(Path::new("/d/wal-00000000000000000042.log")),
            FileKind::Segment(42)
        );
        assert_eq!(
            classify(Path::new(&snapshot_name(9))),
            FileKind::Snapshot(9)
        );
        assert_eq!(
            classify(&tmp_path(Path::new("/d/snap-00000000000000000009.bin"))),
            FileKind::Temporary
        );
        assert_eq!(
            classify(Path::new("/d/wal-00000000000000000042.log.damaged-1")),
            FileKind::Other
        );
        assert_eq!(classify(Path::new("/d/wal-42.log")), FileKind::Other);
    }

    #[test]
    fn headers_round_trip_and_reject_damage() {
        let h = segment_header(12345);
        assert_eq!(parse_segment_header(&h), Ok(12345));
        for i in 0..SEGMENT_HEADER {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(parse_segment_header(&bad).is_err(), "flip at {i}");
        }
        assert!(parse_segment_header(&h[..10]).is_err());

        let image = b"state".to_vec();
        let mut snap = snapshot_header(99, &image).to_vec();
        snap.extend_from_slice(&image);
        let (covers, r) = parse_snapshot(&snap).unwrap();
        assert_eq!((covers, &snap[r]), (99, &image[..]));
        for i in 0..snap.len() {
            let mut bad = snap.clone();
            bad[i] ^= 1;
            assert!(parse_snapshot(&bad).is_err(), "flip at {i}");
        }
        assert!(parse_snapshot(&snap[..snap.len() - 1]).is_err());
    }

    #[test]
    fn scan_tells_torn_tails_from_damage() {
        let full = segment(&[b"aaaa", b"bbbbbb", b"cc"]);
        let s = scan_records(&full);
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.valid_len, full.len());
        assert!(s.damage.is_none());

        // Every cut inside the last record is a torn tail.
        let last_start = full.len() - RECORD_HEADER - 2;
        for cut in last_start + 1..full.len() {
            let s = scan_records(&full[..cut]);
            assert_eq!(s.records.len(), 2, "cut {cut}");
            assert_eq!(s.valid_len, last_start);
            assert!(matches!(s.damage, Some((_, false))), "cut {cut}");
        }

        // A zero-filled tail.
        let mut z = full.clone();
        z.extend_from_slice(&[0u8; 100]);
        let s = scan_records(&z);
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.damage, Some(("zero-filled tail", false)));

        // A flipped byte in the first record: a valid record follows.
        for i in SEGMENT_HEADER..SEGMENT_HEADER + RECORD_HEADER + 4 {
            let mut bad = full.clone();
            bad[i] ^= 0x40;
            let s = scan_records(&bad);
            assert_eq!(s.records.len(), 0, "flip at {i}");
            assert_eq!(s.valid_len, SEGMENT_HEADER);
            assert!(
                matches!(s.damage, Some((_, true))),
                "flip at {i}: {:?}",
                s.damage
            );
        }
    }
}

//! The one place that knows the binary encoding of log records and snapshots
//! (bincode 2 over serde), so that it can be swapped without touching anything
//! else. Decoding is bounded: a damaged length prefix inside a record cannot make
//! the decoder allocate more than the record could hold.

use serde::{de::DeserializeOwned, Serialize};

/// The largest log record we ever decode.
pub const MAX_RECORD: usize = 16 << 20;
/// The largest snapshot image we ever decode.
pub const MAX_SNAPSHOT: usize = 8 << 30;

/// Why bytes could not be turned into a value.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("cannot decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes a value with the project's encoding.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
}

/// Decodes a value that is at most [`MAX_RECORD`] bytes and fills `bytes` exactly.
pub fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(
        bytes,
        bincode::config::standard().with_limit::<MAX_RECORD>(),
    )?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

/// Decodes a snapshot image that fills `bytes` exactly.
///
/// bincode allocates a string's claimed length before reading it, so the
/// limit follows the image's size: it counts at most 16 claimed bytes for
/// each byte it reads (8 for any varint however short, 16 for a `u128`), so
/// 16 times the image always suffices for a real one, and a length prefix
/// claiming gigabytes in a small image is refused before it is allocated.
pub fn decode_snapshot<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.len() {
        n if n <= 1 << 20 => decode_within::<T, { 16 << 20 }>(bytes),
        n if n <= 16 << 20 => decode_within::<T, { 256 << 20 }>(bytes),
        n if n <= 256 << 20 => decode_within::<T, { 4 << 30 }>(bytes),
        _ => decode_within::<T, MAX_SNAPSHOT>(bytes),
    }
}

fn decode_within<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = decode_prefix_within::<T, LIMIT>(bytes)?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

fn decode_prefix_within<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), CodecError> {
    Ok(bincode::serde::decode_from_slice(
        bytes,
        bincode::config::standard().with_limit::<LIMIT>(),
    )?)
}

/// Reads a snapshot image field by field, so that an image whose later fields
/// are missing (written before they existed) still decodes.
///
/// bincode writes a struct as its fields one after another with nothing
/// between them, so the fields of an image read one at a time are the image;
/// a struct that only ever gains fields at its end can therefore read every
/// earlier layout by taking each missing tail field as its default. The
/// allocation bound is that of [`decode_snapshot`] for the whole image.
pub struct SnapshotReader<'a> {
    rest: &'a [u8],
    total: usize,
}

impl<'a> SnapshotReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        SnapshotReader {
            rest: bytes,
            total: bytes.len(),
        }
    }

    /// The next field, which every layout has.
    pub fn field<T: DeserializeOwned>(&mut self) -> Result<T, CodecError> {
        let (value, used) = match self.total {
            n if n <= 1 << 20 => decode_prefix_within::<T, { 16 << 20 }>(self.rest),
            n if n <= 16 << 20 => decode_prefix_within::<T, { 256 << 20 }>(self.rest),
            n if n <= 256 << 20 => decode_prefix_within::<T, { 4 << 30 }>(self.rest),
            _ => decode_prefix_within::<T, MAX_SNAPSHOT>(self.rest),
        }?;
        self.rest = &self.rest[used..];
        Ok(value)
    }

    /// The next field, added in a later layout: its default when the image
    /// ended before it.
    pub fn later_field<T: DeserializeOwned + Default>(&mut self) -> Result<T, CodecError> {
        if self.rest.is_empty() {
            return Ok(T::default());
        }
        self.field()
    }

    /// Ends the image: every byte must have been read.
    pub fn finish(self) -> Result<(), CodecError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(CodecError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod fuzz_tests {
    //! Property-based fuzzing of the decoders (`fuzz_*`): any bytes, and valid
    //! encodings mutated, decode to a value or a typed error, never a panic or
    //! an allocation the input cannot pay for.

    use proptest::prelude::*;

    use super::*;
    use crate::app::StateImage;
    use crate::event::Event;

    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A varint (bincode's standard encoding) of `n`.
    fn varint(n: u64) -> Vec<u8> {
        encode(&n).unwrap()
    }

    proptest! {
        #![proptest_config(config(2000))]

        /// Arbitrary bytes as a log record or a snapshot: a value or an error.
        #[test]
        fn fuzz_decode_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_record::<Event>(&bytes);
            let _ = decode_record::<(u64, String, Vec<u8>)>(&bytes);
            let _ = decode_snapshot::<Vec<String>>(&bytes);
            let _ = StateImage::decode(&bytes);
        }

        /// A length prefix claiming up to 2^64 elements in a few bytes is
        /// refused without allocating what it claims.
        #[test]
        fn fuzz_decode_huge_length_prefix(n in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut b = varint(n);
            b.extend_from_slice(&tail);
            let _ = decode_record::<Vec<u8>>(&b);
            let _ = decode_record::<Vec<u64>>(&b);
            let _ = decode_record::<String>(&b);
            let _ = decode_snapshot::<Vec<u8>>(&b);
            let _ = decode_snapshot::<Vec<String>>(&b);
            let _ = decode_snapshot::<String>(&b);
            if n > tail.len() as u64 {
                prop_assert!(decode_snapshot::<Vec<u8>>(&b).is_err());
            }
        }

        /// Encode then decode gives the value back; a cut or an extra byte is an error.
        #[test]
        fn fuzz_codec_round_trip(v in any::<(u64, String, Vec<u8>, Option<i32>)>(), extra in any::<u8>()) {
            let mut b = encode(&v).unwrap();
            prop_assert_eq!(&decode_record::<(u64, String, Vec<u8>, Option<i32>)>(&b).unwrap(), &v);
            prop_assert_eq!(&decode_snapshot::<(u64, String, Vec<u8>, Option<i32>)>(&b).unwrap(), &v);
            b.push(extra);
            prop_assert!(matches!(decode_record::<(u64, String, Vec<u8>, Option<i32>)>(&b), Err(CodecError::Trailing(1))));
            b.pop();
            b.pop();
            prop_assert!(decode_record::<(u64, String, Vec<u8>, Option<i32>)>(&b).is_err());
        }
    }

    /// Bug found by fuzzing: a record of nested batches (two bytes a level)
    /// overflowed the stack while decoding and aborted the process. Batches
    /// now nest at most `MAX_BATCH_DEPTH` deep; that deep still round-trips.
    #[test]
    fn fuzz_regression_deeply_nested_batch() {
        let levels = 100_000;
        let mut b = Vec::new();
        for _ in 0..levels {
            b.extend_from_slice(&[4, 1]);
        }
        b.extend_from_slice(&[4, 0]);
        assert!(decode_record::<Event>(&b).is_err());
        assert!(decode_snapshot::<Vec<Event>>(&b[1..]).is_err());

        let mut deepest = Event::Batch(vec![]);
        for _ in 1..crate::event::MAX_BATCH_DEPTH {
            deepest = Event::Batch(vec![deepest.clone(), deepest]);
        }
        let bytes = encode(&deepest).unwrap();
        assert_eq!(decode_record::<Event>(&bytes).unwrap(), deepest);
        let too_deep = encode(&Event::Batch(vec![deepest])).unwrap();
        let e = decode_record::<Event>(&too_deep).unwrap_err();
        assert!(e.to_string().contains("nested deeper"), "{e}");
        // The depth count is per decode: a refused one leaves none behind.
        assert!(decode_record::<Event>(&bytes).is_ok());
    }

    /// Bug found by fuzzing: five bytes of snapshot image claiming a 7 GiB
    /// string made the decoder reserve 7 GiB (the limit was the fixed 8 GiB)
    /// before finding the bytes missing; now the limit follows the image.
    #[test]
    fn fuzz_regression_small_snapshot_cannot_claim_gigabytes() {
        let peak = || {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    let l = s.lines().find(|l| l.starts_with("VmPeak:"))?.to_owned();
                    l.split_whitespace().nth(1)?.parse::<u64>().ok()
                })
        };
        let before = peak();
        let b = encode(&(7u64 << 30)).unwrap();
        assert!(decode_snapshot::<String>(&b).is_err());
        assert!(decode_snapshot::<serde_bytes_like::Buf>(&b).is_err());
        if let (Some(before), Some(after)) = (before, peak()) {
            // Other tests run alongside; 7 GiB of address space is unmistakable.
            assert!(
                after < before + (1 << 20),
                "VmPeak grew from {before} kB to {after} kB"
            );
        }
        // Real values near the tier boundaries still decode.
        for n in [1usize << 20, (1 << 20) + 1] {
            let s = "x".repeat(n - 4);
            let bytes = encode(&s).unwrap();
            assert_eq!(decode_snapshot::<String>(&bytes).unwrap(), s);
        }
        let many: Vec<u128> = vec![1; 1 << 16];
        assert_eq!(
            decode_snapshot::<Vec<u128>>(&encode(&many).unwrap()).unwrap(),
            many
        );
    }

    mod serde_bytes_like {
        /// A byte buffer decoded through `deserialize_byte_buf`.
        #[derive(Debug)]
        pub struct Buf;
        impl<'de> serde::Deserialize<'de> for Buf {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Buf;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_byte_buf<E>(self, _: Vec<u8>) -> Result<Buf, E> {
                        Ok(Buf)
                    }
                }
                d.deserialize_byte_buf(V)
            }
        }
    }
}

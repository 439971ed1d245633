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
pub fn decode_snapshot<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(
        bytes,
        bincode::config::standard().with_limit::<MAX_SNAPSHOT>(),
    )?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

//! Sealing of the owner's secrets at rest: key values, key metadata and the
//! answers kept for `Idempotency-Key` retries are encrypted with
//! XChaCha20-Poly1305 (the `chacha20poly1305` crate) under the server's master
//! key before they reach a domain, so the log and snapshots only ever hold
//! ciphertext. Each sealed blob is bound to what it belongs to (its
//! associated data, e.g. the key id), so ciphertext copied from one key to
//! another does not open.
//!
//! Layout of a sealed blob: `1` (format) | 24-byte random nonce | ciphertext
//! and 16-byte tag. A random 192-bit nonce never repeats in practice, which
//! is why the extended-nonce variant is used.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// The first byte of every sealed blob.
const FORMAT: u8 = 1;
const NONCE: usize = 24;

/// Why a master key or a sealed blob was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The blob does not open under this key (wrong key, or damaged).
    #[error("the data does not decrypt under this master key")]
    WrongKey,
    /// A master key that is not 32 bytes of base64.
    #[error("a master key must be 32 bytes, base64-encoded ({0})")]
    BadKey(String),
}

/// The server's master key. Its bytes never leave this type.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// A key for [`MasterKey::fingerprint`], derived from the master key.
    mac_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"keypool request fingerprint v1");
        h.update(bytes);
        MasterKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            mac_key: h.finalize().into(),
        }
    }

    /// The key from its base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| SealError::BadKey(e.to_string()))?;
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| SealError::BadKey(format!("got {} bytes", raw.len())))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A new random key and its base64 text.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        (Self::from_bytes(&bytes), text)
    }

    /// A keyed fingerprint (HMAC-SHA256) of `parts`, each length-prefixed:
    /// unlike a plain hash it cannot be brute-forced back to a small secret
    /// in them (a PIN) by someone who reads the log.
    pub fn fingerprint(&self, parts: &[&[u8]]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.mac_key)
            .expect("HMAC takes a key of any length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plain`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut out = Vec::with_capacity(1 + NONCE + ct.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a blob made by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE || sealed[0] != FORMAT {
            return Err(SealError::WrongKey);
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SealError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_binding() {
        let (k, text) = MasterKey::generate();
        let sealed = k.seal(b"key-1", b"secret value");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(k.open(b"key-1", &sealed).unwrap(), b"secret value");
        assert_eq!(k.open(b"key-2", &sealed), Err(SealError::WrongKey));
        let same = MasterKey::from_base64(&text).unwrap();
        assert_eq!(same.open(b"key-1", &sealed).unwrap(), b"secret value");
        let (other, _) = MasterKey::generate();
        assert_eq!(other.open(b"key-1", &sealed), Err(SealError::WrongKey));
        let mut bent = sealed.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(b"key-1", &bent), Err(SealError::WrongKey));
        assert_eq!(k.open(b"key-1", &[]), Err(SealError::WrongKey));
    }

    #[test]
    fn refuses_keys_of_the_wrong_size() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}

//! The key that seals States, held in memory (its file: `key_file.rs`).

use std::fmt;

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(super) const KEY_LEN: usize = 32;

/// The 32-byte key that seals States. Debug never shows it.
pub struct StateKey(pub(super) [u8; KEY_LEN]);

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

impl Drop for StateKey {
    fn drop(&mut self) {
        // Best effort: do not leave the key in freed memory.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

impl StateKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> StateKey {
        StateKey(bytes)
    }

    pub(super) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// A key of its own for `purpose`, derived from this one (HMAC-SHA256 under it):
    /// every server holding the State key derives the same, nobody else can, and
    /// nothing made with it tells anything of the State key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"rlm_mfa derived key v1\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_depend_on_the_key_and_the_purpose() {
        let (a, b) = (StateKey::from_bytes([1; 32]), StateKey::from_bytes([2; 32]));
        assert_eq!(a.derive("push request id"), StateKey::from_bytes([1; 32]).derive("push request id"));
        assert_ne!(a.derive("push request id"), b.derive("push request id"));
        assert_ne!(a.derive("push request id"), a.derive("other"));
    }

    #[test]
    fn debug_hides_key() {
        let k = StateKey::from_bytes([0xAB; 32]);
        let shown = format!("{k:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }
}

//! The key that seals States, held in memory (its file: `key_file.rs`).

use std::fmt;

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_key() {
        let k = StateKey::from_bytes([0xAB; 32]);
        let shown = format!("{k:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }
}

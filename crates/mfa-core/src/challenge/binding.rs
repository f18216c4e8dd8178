//! What a State is bound to: the module instance, the user and the NAS, each
//! carried as a hash so that a State fits one attribute whatever their lengths.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::StateError;

/// Bytes of each binding hash.
const HASH_LEN: usize = 16;
/// Bytes of the three hashes a State carries: instance, user, NAS.
pub(super) const BINDING_LEN: usize = 3 * HASH_LEN;

/// What a State is bound to. The caller builds `nas` from the client's source
/// address, NAS-Identifier and NAS-IP-Address.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub instance: &'a str,
    pub user: &'a str,
    pub nas: &'a str,
}

impl Binding<'_> {
    fn fields(&self) -> [(&'static str, &str, StateError); 3] {
        [
            ("instance", self.instance, StateError::OtherInstance),
            ("user", self.user, StateError::OtherUser),
            ("nas", self.nas, StateError::OtherNas),
        ]
    }

    /// The hashes a State carries, in order: instance, user, NAS.
    pub(super) fn hashes(&self) -> [u8; BINDING_LEN] {
        let mut out = [0u8; BINDING_LEN];
        for ((label, value, _), slot) in self.fields().into_iter().zip(out.chunks_exact_mut(HASH_LEN)) {
            slot.copy_from_slice(&hash(label, value));
        }
        out
    }

    /// Checks the hashes a State carries against this binding; names the first
    /// field that differs.
    pub(super) fn check(&self, sealed: &[u8; BINDING_LEN]) -> Result<(), StateError> {
        for ((label, value, other), carried) in self.fields().into_iter().zip(sealed.chunks_exact(HASH_LEN)) {
            if !bool::from(carried.ct_eq(&hash(label, value))) {
                return Err(other);
            }
        }
        Ok(())
    }
}

/// First 16 bytes of SHA-256 over a domain-separated, length-prefixed field, so
/// that no two (label, value) pairs hash the same input.
fn hash(label: &str, value: &str) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    h.update(b"rlm_mfa State binding v1\0");
    h.update(label.as_bytes());
    h.update(b"\0");
    h.update((value.len() as u64).to_be_bytes());
    h.update(value.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(&digest[..HASH_LEN]);
    out
}

//! Sealing bytes with XChaCha20-Poly1305 under a fresh random nonce, in one
//! layout, `nonce(24) ‖ ciphertext ‖ tag(16)`: the States behind their kind
//! byte (`challenge::envelope`) and what the servers of a farm publish for each
//! other (`engine::joining::farm`) are sealed so.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// What sealing adds to the plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Seals in place the plaintext that `out` holds after [`NONCE_LEN`] bytes kept
/// for the nonce at `at`: writes a fresh nonce there, encrypts what follows it
/// where it lies (the plaintext is never copied elsewhere), appends the tag.
///
/// # Panics
/// If `out` is shorter than `at + NONCE_LEN`, or if the system random number
/// generator fails: without randomness a nonce could repeat and the key would
/// be exposed, so the process stops rather than seal.
pub fn seal_in_place(cipher: &XChaCha20Poly1305, aad: &[u8], out: &mut Vec<u8>, at: usize) {
    let (nonce, plain) = out[at..].split_at_mut(NONCE_LEN);
    getrandom::getrandom(nonce).expect("the system random number generator failed");
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, plain)
        .expect("a plaintext this module seals is within the AEAD's limit");
    out.extend_from_slice(&tag);
}

/// Opens `sealed` (`nonce ‖ ciphertext ‖ tag`): its plaintext, or None when it is
/// too short or not authentic (another key, other associated data, altered).
pub fn open(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = body.to_vec();
    match cipher.decrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut plain, Tag::from_slice(tag)) {
        Ok(()) => Some(plain),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::KeyInit;

    fn cipher(byte: u8) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&[byte; 32].into())
    }

    fn sealed(plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = b"k".to_vec();
        out.resize(1 + NONCE_LEN, 0);
        out.extend_from_slice(plain);
        seal_in_place(&cipher(1), aad, &mut out, 1);
        out
    }

    #[test]
    fn what_is_sealed_opens_with_the_same_key_and_data_only() {
        let out = sealed(b"secret bytes", b"ad");
        assert_eq!(out.len(), 1 + OVERHEAD + 12);
        assert_eq!(out[0], b'k', "what precedes the nonce is left alone");
        assert!(!out.windows(6).any(|w| w == b"secret"), "encrypted where it lay");
        assert_eq!(open(&cipher(1), b"ad", &out[1..]).as_deref(), Some(&b"secret bytes"[..]));
        assert_eq!(open(&cipher(2), b"ad", &out[1..]), None, "another key");
        assert_eq!(open(&cipher(1), b"other", &out[1..]), None, "other associated data");
        let mut flipped = out.clone();
        flipped[30] ^= 1;
        assert_eq!(open(&cipher(1), b"ad", &flipped[1..]), None, "altered");
        assert_eq!(open(&cipher(1), b"ad", &out[1..OVERHEAD]), None, "too short");
    }

    #[test]
    fn each_seal_has_a_nonce_of_its_own() {
        let (a, b) = (sealed(b"same", b""), sealed(b"same", b""));
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
        assert_ne!(a, b);
    }
}

//! The one format of every State: a kind byte, then, sealed with
//! XChaCha20-Poly1305, a header that binds the State and a payload whose layout
//! the kind names.
//!
//! Layout: `[kind][24-byte nonce][ciphertext][16-byte tag]`, the kind byte as
//! the AEAD's associated data, so that no State passes for another kind. The
//! plaintext is the header, `instance hash(16) user hash(16) NAS hash(16)
//! id(16) expires(8, big-endian)`, then the payload, whose length is fixed per
//! kind so that a State's length tells nothing of what it carries:
//! - kind 1, a dialogue of the module's own challenges (`dialogue.rs`), 127 bytes in all;
//! - kind 2, a privacyIDEA transaction (`transaction.rs`), 179 bytes in all.
//!
//! The kind byte was the format's version before there were two kinds, so every
//! State issued since version 1 still opens.

use super::binding::BINDING_LEN;
use super::{Binding, StateError, StateKey};
use crate::sealing::{self, NONCE_LEN, OVERHEAD};

/// Kind byte of a State carrying a dialogue.
pub(super) const DIALOGUE: u8 = 1;
/// Kind byte of a State carrying a privacyIDEA transaction.
pub(super) const TRANSACTION: u8 = 2;

/// The random id by which a node accepts each State once.
const ID_LEN: usize = 16;
// Header offsets.
const ID: usize = BINDING_LEN;
const EXPIRES: usize = ID + ID_LEN;
const HEADER_LEN: usize = EXPIRES + 8;
/// One RADIUS attribute holds at most 253 bytes of value.
const MAX_STATE: usize = 253;

/// What a State carries: a fixed-size encoding behind its own kind byte.
pub(super) trait Payload: Sized {
    /// [`DIALOGUE`] or [`TRANSACTION`].
    const KIND: u8;
    /// Bytes of the encoding, the same for every value.
    const LEN: usize;
    /// Unix time after which the State is refused (carried in the header).
    fn expires(&self) -> u64;
    /// Writes the encoding into `out`: [`Self::LEN`] bytes, all zero.
    ///
    /// # Panics
    /// If the value cannot be encoded (the caller made it wrong).
    fn encode(&self, out: &mut [u8]);
    /// Reads an encoding back; None when authentic bytes are not understood
    /// (only a key holder with another layout could have made them).
    fn decode(bytes: &[u8], expires: u64) -> Option<Self>;
}

/// Bytes of every State of a payload of `payload_len` bytes.
pub(super) const fn sealed_len(payload_len: usize) -> usize {
    1 + OVERHEAD + HEADER_LEN + payload_len
}

/// Seals `payload` for `binding`: always `sealed_len(P::LEN)` bytes.
///
/// # Panics
/// If the payload cannot be encoded, or if the system random number generator fails.
pub(super) fn seal<P: Payload>(key: &StateKey, binding: &Binding, payload: &P) -> Vec<u8> {
    const { assert!(sealed_len(P::LEN) <= MAX_STATE, "a State must fit one RADIUS attribute") };
    let mut state = Vec::with_capacity(sealed_len(P::LEN));
    state.push(P::KIND);
    state.resize(1 + NONCE_LEN, 0); // the nonce's place
    state.extend_from_slice(&binding.hashes());
    state.extend_from_slice(&random::<ID_LEN>());
    state.extend_from_slice(&payload.expires().to_be_bytes());
    let start = state.len();
    state.resize(start + P::LEN, 0);
    payload.encode(&mut state[start..]);
    sealing::seal_in_place(&key.cipher(), &[P::KIND], &mut state, 1);
    debug_assert_eq!(state.len(), sealed_len(P::LEN));
    state
}

/// Opens and checks a State of kind `P`; returns its payload and its 16-byte id.
///
/// Binding mismatches are reported before expiry: a State presented by another
/// user or NAS is worth knowing about even when it is old. Does not check single
/// use (see `crate::store::state_store`), so that the caller decides when the State is spent.
pub(super) fn open<P: Payload>(
    key: &StateKey,
    binding: &Binding,
    now: u64,
    state: &[u8],
) -> Result<(P, [u8; ID_LEN]), StateError> {
    if state.len() != sealed_len(P::LEN) || state[0] != P::KIND {
        return Err(StateError::Malformed);
    }
    let mut plain = sealing::open(&key.cipher(), &[P::KIND], &state[1..]).ok_or(StateError::Forged)?;
    let result = read(&plain, binding, now);
    plain.fill(0);
    std::hint::black_box(&plain);
    result
}

fn read<P: Payload>(plain: &[u8], binding: &Binding, now: u64) -> Result<(P, [u8; ID_LEN]), StateError> {
    let (header, payload) = plain.split_at(HEADER_LEN);
    binding.check(header[..ID].try_into().expect("the binding hashes"))?;
    let id: [u8; ID_LEN] = header[ID..EXPIRES].try_into().expect("the id");
    let expires = u64::from_be_bytes(header[EXPIRES..].try_into().expect("8 bytes"));
    if now > expires {
        return Err(StateError::Expired);
    }
    let payload = P::decode(payload, expires).ok_or(StateError::Malformed)?;
    Ok((payload, id))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Without randomness a nonce could repeat and the key would be exposed: stop.
    getrandom::getrandom(&mut bytes).expect("the system random number generator failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    use data_encoding::HEXLOWER;

    use crate::challenge::test_support::{binding, dialogue, key, NOW};
    use crate::challenge::{seal, seal_transaction, unseal, unseal_transaction, Dialogue, Stage, Transaction};
    use crate::challenge::{STATE_LEN, TX_STATE_LEN};

    #[test]
    fn other_key_is_forged() {
        let state = seal(&key(1), &binding(), &dialogue());
        assert_eq!(unseal(&key(2), &binding(), NOW, &state), Err(StateError::Forged));
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let k = key(1);
        let state = seal(&k, &binding(), &dialogue());
        for i in 0..state.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = state.clone();
                bad[i] ^= bit;
                let expected = if i == 0 { StateError::Malformed } else { StateError::Forged };
                assert_eq!(unseal(&k, &binding(), NOW, &bad), Err(expected), "byte {i}");
            }
        }
    }

    #[test]
    fn wrong_lengths_and_random_bytes_are_refused() {
        let k = key(1);
        let state = seal(&k, &binding(), &dialogue());
        for len in 0..state.len() {
            assert_eq!(unseal(&k, &binding(), NOW, &state[..len]), Err(StateError::Malformed));
        }
        let mut longer = state.clone();
        longer.push(0);
        assert_eq!(unseal(&k, &binding(), NOW, &longer), Err(StateError::Malformed));

        let noise: [u8; 253] = random();
        assert_eq!(unseal(&k, &binding(), NOW, &noise), Err(StateError::Malformed));
        let mut noise: [u8; STATE_LEN] = random();
        noise[0] = DIALOGUE;
        assert_eq!(unseal(&k, &binding(), NOW, &noise), Err(StateError::Forged));
    }

    #[test]
    fn expired_state_is_refused() {
        let k = key(1);
        let state = seal(&k, &binding(), &dialogue());
        assert!(unseal(&k, &binding(), NOW + 120, &state).is_ok());
        assert_eq!(unseal(&k, &binding(), NOW + 121, &state), Err(StateError::Expired));
    }

    #[test]
    fn state_of_another_instance_user_or_nas_is_refused() {
        let k = key(1);
        let state = seal(&k, &binding(), &dialogue());
        let check = |b: Binding| unseal(&k, &b, NOW, &state);
        assert_eq!(check(Binding { instance: "mfa2", ..binding() }), Err(StateError::OtherInstance));
        assert_eq!(check(Binding { user: "bob", ..binding() }), Err(StateError::OtherUser));
        assert_eq!(check(Binding { user: "Alice", ..binding() }), Err(StateError::OtherUser));
        assert_eq!(check(Binding { nas: "192.0.2.2|vpn-1|192.0.2.1", ..binding() }), Err(StateError::OtherNas));
        // The fields are hashed separately: moving text between them does not match.
        let moved = Binding { instance: "mfaalice", user: "", ..binding() };
        assert_eq!(check(moved), Err(StateError::OtherInstance));
        // A mismatch is reported even when the State is also old.
        assert_eq!(unseal(&k, &Binding { user: "bob", ..binding() }, NOW + 1000, &state), Err(StateError::OtherUser));
    }

    #[test]
    fn long_user_and_nas_still_fit_one_attribute() {
        let k = key(1);
        let long = "x".repeat(253);
        let b = Binding { instance: &long, user: &long, nas: &long };
        let state = seal(&k, &b, &dialogue());
        assert!(state.len() <= 253);
        assert_eq!(unseal(&k, &b, NOW, &state).unwrap().0, dialogue());
    }

    #[test]
    fn each_seal_has_its_own_nonce_and_id() {
        let k = key(1);
        let a = seal(&k, &binding(), &dialogue());
        let b = seal(&k, &binding(), &dialogue());
        assert_ne!(a, b);
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
        let (_, id_a) = unseal(&k, &binding(), NOW, &a).unwrap();
        let (_, id_b) = unseal(&k, &binding(), NOW, &b).unwrap();
        assert_ne!(id_a, id_b);
    }

    /// States sealed by the code before the two kinds shared one envelope
    /// (key 0x11 repeated, sealed for `binding()`, expiring at NOW + 120).
    const EARLIER_CODE_STATE: &str = "01f8639b2b737e05b08eca3982ed01a76f48d7b2086b2ca075be231d50cc2d8baf0a937f8c0bd1c55d9bccb4b5f40c7edfd3cdf7dc6c1cd530bf8951d78c03f9dfabd08ebe35657e46c7830fba581b48a9d96ddecb63089c1d343b18acdc47fb495ca8714853cf20a4f784779bfc055bbd1191db472b84cac0fb054760e1c9";
    const EARLIER_MENU_STATE: &str = "01da0c8e77ab65b19dd1140cbee14fb34ddb5eea9f842a85f3dc206ad2a869dbd1543c0b9ca27f2ed59fd5f8bb9e9ef90e8da5e199720089153833eb5694b4d499f0f75a4674c2ad7717f669b8f3c211f361beb9869d8a48782861368934aa5926cf3098ac5cb218de765600c7e952857fa4a2f7c3afc84ef9c8e53b743e32";
    const EARLIER_TRANSACTION_STATE: &str = "02d3c1c90e24bf9200e543079094f32f898ff6b2ce7af58a81770ac56c4f483ea7a130cf17da9c31513d82ef2e0c933f10a2d6ffcc5e3c391b319ef4894fbcc08495d17672268547e3b8de14c9cbb17783f441270cf74e8be848062f47c52aa3631197b1cad27ab56f24cb80edb56f005e19a7ce5114df26a9fe21d0d02081e5445e75b3fa478335ac5be10a3a44a07854ee8212efb72c822f3d768300052b53354278e8ee4089e32f733a55f6bed7825f0f34";

    #[test]
    fn states_issued_by_earlier_code_still_open() {
        let k = key(0x11);
        let open_hex = |hex: &str| HEXLOWER.decode(hex.as_bytes()).unwrap();
        let code = open_hex(EARLIER_CODE_STATE);
        assert_eq!(code.len(), STATE_LEN);
        assert_eq!(unseal(&k, &binding(), NOW, &code).unwrap().0, dialogue());
        let menu = Dialogue { stage: Stage::Menu, method: 0, round: 0, expires: NOW + 120, sent_code: None };
        assert_eq!(unseal(&k, &binding(), NOW, &open_hex(EARLIER_MENU_STATE)).unwrap().0, menu);
        let tx = open_hex(EARLIER_TRANSACTION_STATE);
        assert_eq!(tx.len(), TX_STATE_LEN);
        let expected =
            Transaction { id: "01234567890123456789".into(), poll: true, interactive: true, expires: NOW + 120 };
        assert_eq!(unseal_transaction(&k, &binding(), NOW, &tx).unwrap().0, expected);
    }

    /// Servers that share the key may run the earlier code for a while: each
    /// kind starts with the version byte the earlier code gave that State.
    #[test]
    fn each_kind_keeps_its_earlier_version_byte() {
        assert_eq!(seal(&key(1), &binding(), &dialogue())[0], 1);
        let tx = Transaction { id: "1".into(), poll: false, interactive: true, expires: NOW };
        assert_eq!(seal_transaction(&key(1), &binding(), &tx)[0], 2);
    }
}

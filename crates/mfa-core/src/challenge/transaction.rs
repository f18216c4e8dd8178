//! A State that carries a privacyIDEA transaction (version 2): the transaction
//! id never goes to the NAS in the clear and never comes back from it unsealed,
//! so a State rlm_mfa did not issue is never forwarded to privacyIDEA.
//!
//! Layout (always [`TX_STATE_LEN`] bytes): `[2][24-byte nonce][ciphertext][16-byte tag]`,
//! the version byte as associated data. The plaintext is
//! `instance hash(16) user hash(16) NAS hash(16) id(16) expires(8) flags(1)
//! id length(1) transaction id(64, zero padded)`.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Tag, XNonce};
use subtle::ConstantTimeEq;

use super::{binding_hash, random, Binding, StateError, StateKey, HASH_LEN, NONCE_LEN, TAG_LEN};
use crate::backend::privacyidea::answer::MAX_TRANSACTION_ID;

const VERSION: u8 = 2;
const USER: usize = HASH_LEN;
const NAS: usize = USER + HASH_LEN;
const ID: usize = NAS + HASH_LEN;
const EXPIRES: usize = ID + 16;
const FLAGS: usize = EXPIRES + 8;
const TX_LEN: usize = FLAGS + 1;
const TX: usize = TX_LEN + 1;
const PLAIN_LEN: usize = TX + MAX_TRANSACTION_ID;

/// Length of every transaction State.
pub const TX_STATE_LEN: usize = 1 + NONCE_LEN + PLAIN_LEN + TAG_LEN;
const _: () = assert!(TX_STATE_LEN <= 253);

const POLL: u8 = 1;
const INTERACTIVE: u8 = 2;

/// A privacyIDEA challenge waiting for its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub id: String,
    /// A push token of the challenge can be polled.
    pub poll: bool,
    /// A token of the challenge takes a typed answer.
    pub interactive: bool,
    pub expires: u64,
}

/// Seals `tx` for `binding`.
///
/// # Panics
/// If the transaction id is empty, longer than 64 bytes or not printable ASCII
/// (the answer parser refuses those), or if the system random source fails.
pub fn seal_transaction(key: &StateKey, binding: &Binding, tx: &Transaction) -> Vec<u8> {
    assert!(
        !tx.id.is_empty() && tx.id.len() <= MAX_TRANSACTION_ID && tx.id.bytes().all(|b| b.is_ascii_graphic()),
        "a transaction id is 1 to {MAX_TRANSACTION_ID} printable ASCII characters"
    );
    let mut plain = [0u8; PLAIN_LEN];
    plain[..USER].copy_from_slice(&binding_hash("instance", binding.instance));
    plain[USER..NAS].copy_from_slice(&binding_hash("user", binding.user));
    plain[NAS..ID].copy_from_slice(&binding_hash("nas", binding.nas));
    plain[ID..EXPIRES].copy_from_slice(&random::<16>());
    plain[EXPIRES..FLAGS].copy_from_slice(&tx.expires.to_be_bytes());
    plain[FLAGS] = if tx.poll { POLL } else { 0 } | if tx.interactive { INTERACTIVE } else { 0 };
    plain[TX_LEN] = tx.id.len() as u8;
    plain[TX..TX + tx.id.len()].copy_from_slice(tx.id.as_bytes());

    let nonce: [u8; NONCE_LEN] = random();
    let mut state = Vec::with_capacity(TX_STATE_LEN);
    state.push(VERSION);
    state.extend_from_slice(&nonce);
    state.extend_from_slice(&plain);
    let tag = key
        .cipher()
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &[VERSION], &mut state[1 + NONCE_LEN..])
        .expect("a fixed-size plaintext is within the AEAD's limit");
    state.extend_from_slice(&tag);
    state
}

/// Opens and checks a transaction State; returns it and its 16-byte id (for single use).
pub fn unseal_transaction(
    key: &StateKey,
    binding: &Binding,
    now: u64,
    state: &[u8],
) -> Result<(Transaction, [u8; 16]), StateError> {
    if state.len() != TX_STATE_LEN || state[0] != VERSION {
        return Err(StateError::Malformed);
    }
    let nonce = &state[1..1 + NONCE_LEN];
    let (body, tag) = state[1 + NONCE_LEN..].split_at(PLAIN_LEN);
    let mut plain = [0u8; PLAIN_LEN];
    plain.copy_from_slice(body);
    key.cipher()
        .decrypt_in_place_detached(XNonce::from_slice(nonce), &[VERSION], &mut plain, Tag::from_slice(tag))
        .map_err(|_| StateError::Forged)?;
    let same = |range: std::ops::Range<usize>, label: &str, value: &str| -> bool {
        bool::from(plain[range].ct_eq(&binding_hash(label, value)))
    };
    if !same(0..USER, "instance", binding.instance) {
        return Err(StateError::OtherInstance);
    }
    if !same(USER..NAS, "user", binding.user) {
        return Err(StateError::OtherUser);
    }
    if !same(NAS..ID, "nas", binding.nas) {
        return Err(StateError::OtherNas);
    }
    let expires = u64::from_be_bytes(plain[EXPIRES..FLAGS].try_into().expect("8 bytes"));
    if now > expires {
        return Err(StateError::Expired);
    }
    let len = usize::from(plain[TX_LEN]);
    let id = plain.get(TX..TX + len).filter(|id| len > 0 && id.iter().all(u8::is_ascii_graphic));
    let Some(id) = id else { return Err(StateError::Malformed) };
    let tx = Transaction {
        id: id.iter().map(|&b| char::from(b)).collect(),
        poll: plain[FLAGS] & POLL != 0,
        interactive: plain[FLAGS] & INTERACTIVE != 0,
        expires,
    };
    let mut state_id = [0u8; 16];
    state_id.copy_from_slice(&plain[ID..EXPIRES]);
    Ok((tx, state_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(user: &'a str, nas: &'a str) -> Binding<'a> {
        Binding { instance: "mfa", user, nas }
    }

    #[test]
    fn round_trip_and_bindings() {
        let key = StateKey::from_bytes([7; 32]);
        let tx = Transaction { id: "01234567890123456789".into(), poll: true, interactive: false, expires: 100 };
        let state = seal_transaction(&key, &binding("alice", "nas1"), &tx);
        assert_eq!(state.len(), TX_STATE_LEN);
        let (back, _) = unseal_transaction(&key, &binding("alice", "nas1"), 50, &state).unwrap();
        assert_eq!(back, tx);
        assert_eq!(unseal_transaction(&key, &binding("bob", "nas1"), 50, &state), Err(StateError::OtherUser));
        assert_eq!(unseal_transaction(&key, &binding("alice", "nas2"), 50, &state), Err(StateError::OtherNas));
        assert_eq!(unseal_transaction(&key, &binding("alice", "nas1"), 101, &state), Err(StateError::Expired));
        let other_key = StateKey::from_bytes([8; 32]);
        assert_eq!(unseal_transaction(&other_key, &binding("alice", "nas1"), 50, &state), Err(StateError::Forged));
        for i in 0..state.len() {
            let mut flipped = state.clone();
            flipped[i] ^= 1;
            assert!(unseal_transaction(&key, &binding("alice", "nas1"), 50, &flipped).is_err());
        }
    }

    #[test]
    fn a_dialogue_state_is_not_a_transaction_nor_the_reverse() {
        let key = StateKey::from_bytes([7; 32]);
        let b = binding("alice", "nas1");
        let dialogue = super::super::Dialogue {
            stage: super::super::Stage::Code,
            method: 0,
            round: 0,
            expires: 100,
            sent_code: None,
        };
        let v1 = super::super::seal(&key, &b, &dialogue);
        assert_eq!(unseal_transaction(&key, &b, 50, &v1), Err(StateError::Malformed));
        let tx = Transaction { id: "1".into(), poll: false, interactive: true, expires: 100 };
        let v2 = seal_transaction(&key, &b, &tx);
        assert_eq!(super::super::unseal(&key, &b, 50, &v2).unwrap_err(), StateError::Malformed);
    }
}

//! The payload of a privacyIDEA challenge: its transaction id, which never goes
//! to the NAS in the clear and never comes back from it unsealed, so a State
//! rlm_mfa did not issue is never forwarded to privacyIDEA.
//!
//! Encoding (66 bytes): `flags(1) id length(1) transaction id(64, zero padded)`.

use super::envelope::{self, sealed_len, Payload};
use super::{Binding, StateError, StateKey};

/// The longest transaction id a State carries: privacyIDEA's are 20 digits.
pub const MAX_TRANSACTION_ID: usize = 64;

// Offsets in the encoding.
const FLAGS: usize = 0;
const ID_LEN: usize = FLAGS + 1;
const ID: usize = ID_LEN + 1;

const POLL: u8 = 1;
const INTERACTIVE: u8 = 2;

/// Length of every State that carries a transaction.
pub const TX_STATE_LEN: usize = sealed_len(Transaction::LEN);

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

impl Transaction {
    /// Whether `id` can travel in a State: 1 to [`MAX_TRANSACTION_ID`] printable
    /// ASCII characters.
    pub fn is_valid_id(id: &[u8]) -> bool {
        !id.is_empty() && id.len() <= MAX_TRANSACTION_ID && id.iter().all(u8::is_ascii_graphic)
    }
}

impl Payload for Transaction {
    const KIND: u8 = envelope::TRANSACTION;
    const LEN: usize = ID + MAX_TRANSACTION_ID;

    fn expires(&self) -> u64 {
        self.expires
    }

    fn encode(&self, out: &mut [u8]) {
        assert!(
            Transaction::is_valid_id(self.id.as_bytes()),
            "a transaction id is 1 to {MAX_TRANSACTION_ID} printable ASCII characters"
        );
        out[FLAGS] = if self.poll { POLL } else { 0 } | if self.interactive { INTERACTIVE } else { 0 };
        out[ID_LEN] = self.id.len() as u8;
        out[ID..ID + self.id.len()].copy_from_slice(self.id.as_bytes());
    }

    fn decode(bytes: &[u8], expires: u64) -> Option<Transaction> {
        let id = bytes.get(ID..ID + usize::from(bytes[ID_LEN])).filter(|id| Transaction::is_valid_id(id))?;
        Some(Transaction {
            id: id.iter().map(|&b| char::from(b)).collect(),
            poll: bytes[FLAGS] & POLL != 0,
            interactive: bytes[FLAGS] & INTERACTIVE != 0,
            expires,
        })
    }
}

/// Seals `tx` for `binding`: always [`TX_STATE_LEN`] bytes.
///
/// # Panics
/// If the transaction id is not [`Transaction::is_valid_id`] (the answer parser
/// refuses those), or if the system random source fails.
pub fn seal_transaction(key: &StateKey, binding: &Binding, tx: &Transaction) -> Vec<u8> {
    envelope::seal(key, binding, tx)
}

/// Opens and checks a transaction's State; returns it and its 16-byte id (for single use).
pub fn unseal_transaction(
    key: &StateKey,
    binding: &Binding,
    now: u64,
    state: &[u8],
) -> Result<(Transaction, [u8; 16]), StateError> {
    envelope::open(key, binding, now, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::challenge::{seal, unseal, Dialogue, Stage};

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
        let dialogue = Dialogue { stage: Stage::Code, method: 0, round: 0, expires: 100, sent_code: None };
        let v1 = seal(&key, &b, &dialogue);
        assert_eq!(unseal_transaction(&key, &b, 50, &v1), Err(StateError::Malformed));
        let tx = Transaction { id: "1".into(), poll: false, interactive: true, expires: 100 };
        let v2 = seal_transaction(&key, &b, &tx);
        assert_eq!(unseal(&key, &b, 50, &v2).unwrap_err(), StateError::Malformed);
    }
}

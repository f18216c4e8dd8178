//! The RADIUS State of a challenge: what the dialogue needs next, sealed with
//! XChaCha20-Poly1305.
//!
//! Every server that holds the same key file can check and continue a dialogue
//! another began, so a NAS may fail over between servers mid-login; no dialogue
//! table has to be shared. A State is bound to the module instance, the user and
//! the NAS, carries its own expiry, and has a random id, which the state store
//! records when the State is answered (`store::state_store`), so that it is
//! accepted once, before and after a restart.
//!
//! One format (`envelope.rs`) carries one of two payloads, named by its first
//! byte: the module's own dialogue (`dialogue.rs`) or a privacyIDEA transaction
//! (`transaction.rs`). The key lives in `key.rs` and its file in `key_file.rs`.

mod binding;
mod dialogue;
mod envelope;
mod error;
mod key;
mod key_file;
#[cfg(test)]
mod test_support;
mod transaction;

pub use binding::Binding;
pub use dialogue::{seal, unseal, Dialogue, Stage, MAX_SENT_CODE, STATE_LEN};
pub use error::StateError;
pub use key::StateKey;
pub use transaction::{seal_transaction, unseal_transaction, Transaction, MAX_TRANSACTION_ID, TX_STATE_LEN};

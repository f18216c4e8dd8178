//! The durable state journal: last accepted TOTP step and next HOTP counter per
//! (user, serial), failure counts and lockouts per user (format in docs/DESIGN.md).
//!
//! The FreeRADIUS module and `mfa-admin` share one file. Every writer takes an
//! exclusive `flock` on the file, catches up with what others appended, then
//! appends one JSON line with a single `write()`. The module keeps the lock
//! between writes while nobody else opens the file (`lease.rs`). Records are idempotent "set"
//! records, so replaying a file always yields the same state. A state we cannot
//! read is an error, never "empty": forgetting a step would let a code be used twice.

mod append;
mod compact;
mod compactor;
mod error;
mod file;
#[cfg(test)]
mod fixtures;
mod lease;
mod lock;
mod record;
mod replay;
mod shared;
mod state;
mod state_journal;

pub use crate::factor::state::TokenState;
pub use error::JournalError;
pub use shared::SharedJournal;
pub use state::LockState;
pub use state_journal::{JournalOptions, StateJournal};

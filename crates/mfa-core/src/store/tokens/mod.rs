//! The token file: which users own which OTP tokens (format in docs/DESIGN.md).
//!
//! Parsing is strict (unknown fields are errors) so that a typo such as
//! `"digit": 8` cannot silently leave a token with a default the admin did not
//! mean. Loading refuses a file that other users can read, because it holds the
//! shared secrets. Error messages never contain a secret: they end up in logs.

mod db;
mod edit_lock;
mod error;
#[cfg(test)]
mod fixtures;
mod load;
mod otpauth;
mod parse;
mod save;
mod serial;
mod serialize;
mod user;
mod validate;

pub use crate::factor::secret::{Secret, SecretError, ENROLL_MIN_SECRET_BYTES, MIN_SECRET_BYTES, NEW_SECRET_BYTES};
pub use crate::factor::token::{Token, TokenKind};
pub use db::TokenDb;
pub use edit_lock::EditLock;
pub use error::TokenError;
pub use parse::{DEFAULT_DIGITS, DEFAULT_PERIOD};
pub use save::NEW_FILE_MODE;
pub use user::User;
pub use validate::{validate_email, validate_groups, validate_sms, MAX_PERIOD};

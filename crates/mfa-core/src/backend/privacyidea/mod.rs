//! The privacyIDEA backend: the whole credential goes to privacyIDEA's
//! `/validate/check`, so that its PIN, passthru and LDAP policies decide as
//! they do for its other clients; its challenges become Access-Challenges
//! whose State is rlm_mfa's own sealed one (the transaction id inside, bound
//! to user and NAS), and push tokens are polled within a bound.

pub mod answer;
pub mod client;

pub use answer::{AnswerError, Challenge, CheckAnswer, PollStatus, Verdict};
pub use client::{CallError, Called, ClientConfig, HttpClient, Validate};
// The checked `privacyidea { }` section is the configuration layer's.
pub use crate::config::privacyidea::{PiConfig, PollMode};

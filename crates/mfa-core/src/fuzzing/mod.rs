//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`): each feeds bytes to one
//! parser of outside input and checks what must hold whatever the bytes, not only
//! that nothing panics. A failed check panics, which libFuzzer reports as a crash.
//!
//! Plain safe Rust in the library, so that `cargo test` on stable replays every
//! file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the
//! same bodies (the test at the end): CI keeps the corpus checked without nightly.

mod config;
mod http_answers;
mod input;
mod journal_file;
mod names;
mod password;
mod privacyidea;
mod state;
mod token_file;

pub use config::{config, template};
pub use http_answers::{gateway_answer, push_answer};
pub use journal_file::journal_file;
pub use names::{user_map, user_name};
pub use password::password_split;
pub use privacyidea::{privacyidea_answer, reply_rules, transaction_state};
pub use state::{state_tamper, state_unseal};
pub use token_file::token_file;

/// A target's body: any bytes in, a panic when a check fails.
pub type Body = fn(&[u8]);

/// Every target by the name of its file in `fuzz/fuzz_targets/` and its corpus directory.
pub const TARGETS: &[(&str, Body)] = &[
    ("config", config),
    ("gateway_answer", gateway_answer),
    ("journal_file", journal_file),
    ("password_split", password_split),
    ("privacyidea_answer", privacyidea_answer),
    ("push_answer", push_answer),
    ("reply_rules", reply_rules),
    ("state_tamper", state_tamper),
    ("state_unseal", state_unseal),
    ("template", template),
    ("token_file", token_file),
    ("transaction_state", transaction_state),
    ("user_map", user_map),
    ("user_name", user_name),
];

/// Whether `text` could be written as one line of a log: no line break, no
/// escape sequence, no other control character.
fn one_log_line(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

#[cfg(test)]
mod replay;

//! Why an HTTP client cannot be built from its settings: the item at fault,
//! as data, and what is wrong with it in plain words.

use std::fmt;

/// A client's settings refused at start-up. `field` is the item's name inside
/// its section ("url", "authorization", "timeout", "body_template", "ca_file",
/// "ca_path", "api_key", "api_key_header"); the engine turns it into the full
/// item path ("sms.url", "privacyidea.ca_file"). `message` never quotes a
/// secret: no Authorization value, no URL credentials or query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupError {
    pub field: &'static str,
    pub message: String,
}

impl SetupError {
    pub fn new(field: &'static str, message: impl Into<String>) -> SetupError {
        SetupError { field, message: message.into() }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SetupError {}

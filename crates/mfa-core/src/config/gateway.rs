//! The `sms { }` and `email { }` sections: an HTTP gateway that sends codes.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{invalid, optional_path, ConfigError};
use crate::text::url::{has_http_scheme, redact};

crate::section! {
    /// The items of an `sms { }` or `email { }` section, before checking.
    pub struct RawGateway {
        /// Without it the method is not offered. May carry credentials.
        url: Option<String> [secret()],
        /// The Authorization header's value.
        authorization: Option<String> [secret()],
        /// JSON body with {destination}, {message} and {user}.
        body: Option<String>,
        /// The text sent, with {code} and {correlation}.
        message: Option<String> = "Your login code is {code} ({correlation})",
        timeout: u32 = "5" [range(1, 30, "seconds")],
        /// CAs (PEM) to verify the gateway with, instead of the system's.
        ca_file: Option<String>,
        /// A directory of CA certificates (*.pem, *.crt), instead of the system's.
        ca_path: Option<String>,
    }
}

/// An HTTP gateway that sends codes by SMS or e-mail.
#[derive(Clone, PartialEq, Eq)]
pub struct Gateway {
    pub url: String,
    /// The Authorization header's value: a secret.
    pub authorization: Option<String>,
    /// JSON body with {destination}, {message} and {user}.
    pub body: String,
    /// The text sent, with {code} and {correlation}.
    pub message: String,
    pub timeout: Duration,
    /// CAs to verify the gateway with instead of the system's.
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("url", &redact(&self.url))
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("body", &self.body)
            .field("message", &self.message)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .finish()
    }
}

/// The `section` (`sms` or `email`); None when its url is empty (the method is then not offered).
pub fn gateway(section: &str, raw: &RawGateway) -> Result<Option<Gateway>, ConfigError> {
    let item = |name: &str| format!("{section}.{name}");
    let url = raw.url.as_deref().map(str::trim).unwrap_or("");
    if url.is_empty() {
        return Ok(None);
    }
    if !has_http_scheme(url) {
        return Err(invalid(item("url"), format!("\"{}\" is not an http:// or https:// URL", redact(url))));
    }
    let body = raw.body.clone().unwrap_or_default();
    if body.trim().is_empty() {
        return Err(invalid(item("body"), "a JSON body template is required"));
    }
    let message = raw.message.clone().unwrap_or_default();
    if !message.contains("{code}") {
        return Err(invalid(item("message"), "must contain {code}"));
    }
    Ok(Some(Gateway {
        url: url.to_string(),
        authorization: raw.authorization.clone().filter(|a| !a.is_empty()),
        body,
        message,
        timeout: Duration::from_secs(u64::from(raw.timeout)),
        ca_file: optional_path(&raw.ca_file),
        ca_path: optional_path(&raw.ca_path),
    }))
}

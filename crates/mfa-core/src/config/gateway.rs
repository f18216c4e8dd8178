//! The `sms { }` and `email { }` sections: an HTTP gateway that sends codes.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{choice, invalid, optional_path, ConfigError};
use crate::text::url::{has_http_scheme, redact};

/// How the request body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`; values JSON-escaped.
    Json,
    /// `application/x-www-form-urlencoded`; values percent-encoded.
    Form,
}

crate::section! {
    /// The items of an `sms { }` or `email { }` section, before checking.
    pub struct RawGateway {
        /// Without it the method is not offered. May carry credentials.
        url: Option<String> [secret()],
        /// The Authorization header's value.
        authorization: Option<String> [secret()],
        /// The body template with {destination}, {message} and {user}.
        body: Option<String>,
        /// `json` or `form` (application/x-www-form-urlencoded fields).
        body_format: Option<String> = "json",
        /// HTTP Basic authentication: the user (an SMS API's account id)...
        username: Option<String>,
        /// ...and its password or token.
        password: Option<String> [secret()],
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
    /// The Authorization header's value (given, or made from username and password): a secret.
    pub authorization: Option<String>,
    /// The body template with {destination}, {message} and {user}.
    pub body: String,
    pub body_format: BodyFormat,
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
            .field("body_format", &self.body_format)
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
    let body_format = choice(
        &item("body_format"),
        raw.body_format.as_deref(),
        BodyFormat::Json,
        &[("json", BodyFormat::Json), ("form", BodyFormat::Form)],
    )?;
    let body = raw.body.clone().unwrap_or_default();
    if body.trim().is_empty() {
        return Err(invalid(item("body"), "a body template is required"));
    }
    let authorization = raw.authorization.clone().filter(|a| !a.is_empty());
    let basic = basic_authorization(&item, raw)?;
    if basic.is_some() && authorization.is_some() {
        return Err(invalid(item("username"), "HTTP Basic (username, password) or authorization, not both"));
    }
    let message = raw.message.clone().unwrap_or_default();
    if !crate::text::template::inserts(&message, "code") {
        return Err(invalid(item("message"), "must contain {code}"));
    }
    Ok(Some(Gateway {
        url: url.to_string(),
        authorization: authorization.or(basic),
        body,
        body_format,
        message,
        timeout: Duration::from_secs(u64::from(raw.timeout)),
        ca_file: optional_path(&raw.ca_file),
        ca_path: optional_path(&raw.ca_path),
    }))
}

/// `Basic base64(username:password)` (RFC 7617), when both are set.
fn basic_authorization(item: &dyn Fn(&str) -> String, raw: &RawGateway) -> Result<Option<String>, ConfigError> {
    let username = raw.username.clone().filter(|u| !u.is_empty());
    let password = raw.password.clone().filter(|p| !p.is_empty());
    let (username, password) = match (username, password) {
        (None, None) => return Ok(None),
        (Some(u), Some(p)) => (u, p),
        (Some(_), None) => return Err(invalid(item("password"), "is required with a username")),
        (None, Some(_)) => return Err(invalid(item("username"), "is required with a password")),
    };
    if username.contains(':') || username.chars().any(char::is_control) {
        return Err(invalid(item("username"), "must not hold a colon or a control character"));
    }
    if password.chars().any(char::is_control) {
        return Err(invalid(item("password"), "must not hold a control character"));
    }
    let token = data_encoding::BASE64.encode(format!("{username}:{password}").as_bytes());
    Ok(Some(format!("Basic {token}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawGateway {
        RawGateway {
            url: Some("https://api.example.com/Messages.json".into()),
            body: Some("To={destination}&Body={message}".into()),
            body_format: Some("form".into()),
            username: Some("AC123".into()),
            password: Some("s3cr3t".into()),
            ..RawGateway::default()
        }
    }

    #[test]
    fn basic_authentication_is_made_from_username_and_password() {
        let g = gateway("sms", &raw()).unwrap().unwrap();
        assert_eq!(g.body_format, BodyFormat::Form);
        assert_eq!(g.authorization.as_deref(), Some("Basic QUMxMjM6czNjcjN0"));
        let text = format!("{g:?}");
        assert!(!text.contains("s3cr3t") && !text.contains("QUMx"), "{text}");
    }

    #[test]
    fn broken_items_are_named() {
        let refused = |raw: RawGateway| gateway("sms", &raw).unwrap_err().to_string();
        let cases = [
            (RawGateway { body_format: Some("xml".into()), ..raw() }, "sms.body_format"),
            (RawGateway { password: None, ..raw() }, "sms.password"),
            (RawGateway { username: None, ..raw() }, "sms.username"),
            (RawGateway { username: Some("a:b".into()), ..raw() }, "sms.username"),
            (RawGateway { authorization: Some("Bearer x".into()), ..raw() }, "sms.username"),
        ];
        for (raw, item) in cases {
            let e = refused(raw);
            assert!(e.contains(item) && !e.contains("s3cr3t"), "{item}: {e}");
        }
    }
}

//! The `smtp { }` section: e-mail codes sent to a mail server (the organisation's
//! relay) instead of an HTTP gateway (`email { url }`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::redis::{address, Address};
use super::{choice, invalid, optional_path, ConfigError};

/// How the connection to the mail server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP, then STARTTLS before anything else (required: no fall back).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// Plain SMTP throughout.
    None,
}

crate::section! {
    /// The items of the `smtp { }` section, before checking.
    pub struct RawSmtp {
        /// `host:port` of the mail server; without it e-mail is not sent by SMTP.
        server: Option<String>,
        /// `starttls` (port 587 unless given), `tls` (TLS from the first byte, 465) or `none` (25).
        tls: Option<String> = "starttls",
        /// The login (AUTH PLAIN or LOGIN); unset: no login.
        username: Option<String>,
        password: Option<String> [secret()],
        /// The From of the message: `address` or `Name <address>`.
        from: Option<String>,
        /// With {code}, {correlation} and {user}.
        subject: Option<String> = "Your login code ({correlation})",
        /// The text of the message, with {code}, {correlation} and {user}.
        message: Option<String> = "Your login code is {code} ({correlation})",
        /// Bound for one whole send, from the name lookup to the server's last answer.
        timeout: u32 = "10" [range(1, 30, "seconds")],
        /// CAs (PEM) to verify the server with, instead of the system's.
        ca_file: Option<String>,
        /// A directory of CA certificates (*.pem, *.crt), instead of the system's.
        ca_path: Option<String>,
    }
}

/// The checked `smtp { }` section.
#[derive(Clone, PartialEq, Eq)]
pub struct Smtp {
    pub server: Address,
    pub tls: SmtpTls,
    /// The login and its password (a secret), when the server asks for one.
    pub login: Option<(String, String)>,
    pub from: String,
    pub subject: String,
    pub message: String,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smtp")
            .field("server", &self.server)
            .field("tls", &self.tls)
            .field("login", &self.login.as_ref().map(|(user, _)| (user, "<redacted>")))
            .field("from", &self.from)
            .field("subject", &self.subject)
            .field("message", &self.message)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .finish()
    }
}

fn set(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

/// The section; None when `server` is unset (e-mail then goes by `email { url }`, if any).
pub fn smtp(raw: &RawSmtp) -> Result<Option<Smtp>, ConfigError> {
    let Some(server) = set(&raw.server) else { return Ok(None) };
    let tls = choice(
        "smtp.tls",
        raw.tls.as_deref(),
        SmtpTls::StartTls,
        &[("starttls", SmtpTls::StartTls), ("tls", SmtpTls::Tls), ("none", SmtpTls::None)],
    )?;
    let default_port = match tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    };
    let server = address("smtp.server", &server, default_port)?;
    let password = raw.password.clone().filter(|p| !p.is_empty());
    let login = match (set(&raw.username), password) {
        (Some(user), Some(password)) => Some((user, password)),
        (None, None) => None,
        (Some(_), None) => return Err(invalid("smtp.password", "is required with a username")),
        (None, Some(_)) => return Err(invalid("smtp.username", "is required with a password")),
    };
    if login.is_some() && tls == SmtpTls::None {
        return Err(invalid("smtp.username", "a login needs tls = starttls or tls: the password would cross in clear"));
    }
    let from = set(&raw.from).ok_or_else(|| invalid("smtp.from", "the sender's address is required with a server"))?;
    let message = raw.message.clone().unwrap_or_default();
    if !crate::text::template::inserts(&message, "code") {
        return Err(invalid("smtp.message", "must contain {code}"));
    }
    let subject = raw.subject.clone().unwrap_or_default();
    if subject.chars().any(char::is_control) {
        return Err(invalid("smtp.subject", "must be one line"));
    }
    if (raw.ca_file.is_some() || raw.ca_path.is_some()) && tls == SmtpTls::None {
        let item = if raw.ca_file.is_some() { "smtp.ca_file" } else { "smtp.ca_path" };
        return Err(invalid(item, "is used only with tls = starttls or tls"));
    }
    Ok(Some(Smtp {
        server,
        tls,
        login,
        from,
        subject,
        message,
        timeout: Duration::from_secs(u64::from(raw.timeout)),
        ca_file: optional_path(&raw.ca_file),
        ca_path: optional_path(&raw.ca_path),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSmtp {
        RawSmtp {
            server: Some("mail.example.com".into()),
            from: Some("rlm_mfa <mfa@example.com>".into()),
            ..RawSmtp::default()
        }
    }

    fn refused(raw: RawSmtp) -> String {
        smtp(&raw).unwrap_err().to_string()
    }

    #[test]
    fn unset_server_is_no_smtp() {
        assert_eq!(smtp(&RawSmtp::default()).unwrap(), None);
        assert_eq!(smtp(&RawSmtp { server: Some("  ".into()), ..raw() }).unwrap(), None);
    }

    #[test]
    fn ports_follow_the_tls_choice() {
        let port = |tls: &str| smtp(&RawSmtp { tls: Some(tls.into()), ..raw() }).unwrap().unwrap().server.port;
        assert_eq!(port("starttls"), 587);
        assert_eq!(port("TLS"), 465);
        assert_eq!(port("none"), 25);
        let s = smtp(&RawSmtp { server: Some("10.0.0.5:2525".into()), ..raw() }).unwrap().unwrap();
        assert_eq!((s.server.host.as_str(), s.server.port, s.tls), ("10.0.0.5", 2525, SmtpTls::StartTls));
        assert_eq!(s.subject, "Your login code ({correlation})");
    }

    #[test]
    fn broken_items_are_named() {
        let cases = [
            (RawSmtp { tls: Some("ssl".into()), ..raw() }, "smtp.tls"),
            (RawSmtp { server: Some("h:0".into()), ..raw() }, "smtp.server"),
            (RawSmtp { server: Some("a b".into()), ..raw() }, "smtp.server"),
            (RawSmtp { from: None, ..raw() }, "smtp.from"),
            (RawSmtp { username: Some("u".into()), ..raw() }, "smtp.password"),
            (RawSmtp { password: Some("p".into()), ..raw() }, "smtp.username"),
            (
                RawSmtp { username: Some("u".into()), password: Some("p".into()), tls: Some("none".into()), ..raw() },
                "smtp.username",
            ),
            (RawSmtp { message: Some("no code".into()), ..raw() }, "smtp.message"),
            // `{{code}}` is the literal text "{code}": no code would be sent.
            (RawSmtp { message: Some("Code: {{code}}".into()), ..raw() }, "smtp.message"),
            (RawSmtp { subject: Some("a\r\nBcc: x@y".into()), ..raw() }, "smtp.subject"),
            (RawSmtp { ca_file: Some("/ca.pem".into()), tls: Some("none".into()), ..raw() }, "smtp.ca_file"),
        ];
        for (raw, item) in cases {
            let e = refused(raw);
            assert!(e.contains(item), "{item}: {e}");
        }
    }

    #[test]
    fn the_password_stays_out_of_debug_and_errors() {
        let s = smtp(&RawSmtp { username: Some("u".into()), password: Some("s3cr3t".into()), ..raw() }).unwrap();
        let text = format!("{s:?}");
        assert!(!text.contains("s3cr3t") && text.contains("<redacted>"), "{text}");
        let e = refused(RawSmtp { password: Some("s3cr3t".into()), ..raw() });
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}

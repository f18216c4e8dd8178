//! The module's configuration: the raw items of the `mfa { }` section, as
//! FreeRADIUS's CONF_PARSER hands them over, checked into a [`Config`].
//!
//! Every error names the item, so that FreeRADIUS refuses to start with a
//! message an administrator can act on.

use std::fmt;
use std::path::PathBuf;

use crate::password::{OtpPosition, SplitConfig};
use crate::realm::{RealmConfig, RealmPosition, Split};

/// The largest TOTP window accepted: 10 steps either side is already five
/// minutes of codes at 30 s; more only helps an attacker.
pub const MAX_TOTP_WINDOW: u32 = 10;
/// The largest HOTP look-ahead accepted.
pub const MAX_HOTP_LOOK_AHEAD: u32 = 1000;

/// Where the code comes from in the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The password field holds the code alone.
    Otp,
    /// The password field holds password and code; the password part goes to
    /// FreeRADIUS's own first factor.
    PasswordOtp,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Otp => "otp",
            Mode::PasswordOtp => "password+otp",
        }
    }
}

/// The items of the `mfa { }` section as strings, numbers and booleans, before checking.
/// Field names follow the configuration items (`realm.delimiter` is `realm_delimiter`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawConfig {
    pub mode: Option<String>,
    pub tokens: Option<String>,
    pub state: Option<String>,
    pub fsync: bool,
    pub require_token: bool,
    pub totp_window: u32,
    pub hotp_look_ahead: u32,
    pub separator: Option<String>,
    pub otp_position: Option<String>,
    pub otp_length: u32,
    pub user_suffix: Option<String>,
    pub user_map: Option<String>,
    pub realm_delimiter: Option<String>,
    pub realm_split: Option<String>,
    pub realm_position: Option<String>,
    pub realm_strip: bool,
    pub lockout_max_failures: u32,
    pub lockout_duration: u32,
    pub msg_wrong_code: Option<String>,
    pub msg_locked: Option<String>,
    pub msg_no_token: Option<String>,
    pub msg_bad_format: Option<String>,
    pub msg_no_code: Option<String>,
    pub msg_bad_user: Option<String>,
    pub msg_internal: Option<String>,
}

/// What a user is told on each kind of reject. `{seconds}` in `locked` and
/// `{digits}` in `bad_format` are replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Messages {
    pub wrong_code: String,
    pub locked: String,
    pub no_token: String,
    pub bad_format: String,
    pub no_code: String,
    pub bad_user: String,
    pub internal: String,
}

impl Default for Messages {
    fn default() -> Self {
        Self {
            wrong_code: "Wrong or already used code".into(),
            locked: "Too many failed attempts: try again in {seconds} seconds".into(),
            no_token: "No second factor is enrolled for this user".into(),
            bad_format: "The code must be {digits} digits".into(),
            no_code: "Enter your password, then a comma, then the code from your authenticator".into(),
            bad_user: "Malformed user name".into(),
            internal: "Authentication is unavailable, try again later".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockout {
    /// Consecutive failures that lock the user; 0 never locks.
    pub max_failures: u32,
    /// Seconds the user stays locked.
    pub duration: u64,
}

/// The checked configuration of one module instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub tokens: PathBuf,
    pub state: PathBuf,
    pub fsync: bool,
    pub require_token: bool,
    pub totp_window: u64,
    pub hotp_look_ahead: u64,
    pub split: SplitConfig,
    pub user_suffix: String,
    pub user_map: Option<PathBuf>,
    pub realm: RealmConfig,
    pub lockout: Lockout,
    pub messages: Messages,
}

/// A configuration item that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub item: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid '{}': {}", self.item, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(item: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { item, message: message.into() }
}

/// One of a fixed set of words, or an error listing them.
fn choice<T: Copy>(
    item: &'static str,
    value: Option<&str>,
    default: T,
    options: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(value) = value else { return Ok(default) };
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value.trim()))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            invalid(item, format!("\"{value}\" is not one of: {}", names.join(", ")))
        })
}

fn required_path(item: &'static str, value: Option<&str>) -> Result<PathBuf, ConfigError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => Err(invalid(item, "a file name is required")),
    }
}

fn message(value: &Option<String>, default: &str) -> String {
    value.clone().unwrap_or_else(|| default.to_string())
}

impl Config {
    /// Checks every item. The files themselves are opened by the engine, which
    /// reports unreadable ones under the same item names.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let mode = choice(
            "mode",
            raw.mode.as_deref(),
            Mode::Otp,
            &[("otp", Mode::Otp), ("password+otp", Mode::PasswordOtp)],
        )?;
        let tokens = required_path("tokens", raw.tokens.as_deref())?;
        let state = required_path("state", raw.state.as_deref())?;

        if raw.totp_window > MAX_TOTP_WINDOW {
            return Err(invalid(
                "totp_window",
                format!("{} steps is more than the maximum of {MAX_TOTP_WINDOW}", raw.totp_window),
            ));
        }
        if raw.hotp_look_ahead > MAX_HOTP_LOOK_AHEAD {
            return Err(invalid(
                "hotp_look_ahead",
                format!("{} is more than the maximum of {MAX_HOTP_LOOK_AHEAD}", raw.hotp_look_ahead),
            ));
        }

        let separator = raw.separator.clone().unwrap_or_else(|| ",".to_string());
        if separator.chars().any(|c| c.is_ascii_digit()) {
            return Err(invalid("separator", "must not contain digits, which codes are made of"));
        }
        let otp_position = choice(
            "otp_position",
            raw.otp_position.as_deref(),
            OtpPosition::Last,
            &[("last", OtpPosition::Last), ("first", OtpPosition::First)],
        )?;
        let otp_length = raw.otp_length as usize;
        if separator.is_empty() && !(6..=8).contains(&otp_length) {
            return Err(invalid("otp_length", "must be 6, 7 or 8 when separator is empty"));
        }

        let delimiter = match raw.realm_delimiter.as_deref() {
            None => '@',
            // FreeRADIUS keeps backslashes of double-quoted strings as written, so
            // `delimiter = "\\"` arrives as two characters; accept it and a single one.
            Some("@") => '@',
            Some("\\") | Some("\\\\") => '\\',
            Some(d) => {
                return Err(invalid("realm.delimiter", format!("\"{d}\" is not \"@\" or \"\\\\\"")))
            }
        };
        let default_position =
            if delimiter == '\\' { RealmPosition::Prefix } else { RealmPosition::Suffix };
        let realm = RealmConfig {
            delimiter,
            split: choice(
                "realm.split",
                raw.realm_split.as_deref(),
                Split::Last,
                &[("first", Split::First), ("last", Split::Last)],
            )?,
            position: choice(
                "realm.position",
                raw.realm_position.as_deref(),
                default_position,
                &[("suffix", RealmPosition::Suffix), ("prefix", RealmPosition::Prefix)],
            )?,
            strip: raw.realm_strip,
        };

        if raw.lockout_max_failures > 0 && raw.lockout_duration == 0 {
            return Err(invalid("lockout.duration", "must be at least 1 second when max_failures is set"));
        }

        let defaults = Messages::default();
        let messages = Messages {
            wrong_code: message(&raw.msg_wrong_code, &defaults.wrong_code),
            locked: message(&raw.msg_locked, &defaults.locked),
            no_token: message(&raw.msg_no_token, &defaults.no_token),
            bad_format: message(&raw.msg_bad_format, &defaults.bad_format),
            no_code: message(&raw.msg_no_code, &defaults.no_code),
            bad_user: message(&raw.msg_bad_user, &defaults.bad_user),
            internal: message(&raw.msg_internal, &defaults.internal),
        };
        for (item, text) in [
            ("messages.wrong_code", &messages.wrong_code),
            ("messages.locked", &messages.locked),
            ("messages.no_token", &messages.no_token),
            ("messages.bad_format", &messages.bad_format),
            ("messages.no_code", &messages.no_code),
            ("messages.bad_user", &messages.bad_user),
            ("messages.internal", &messages.internal),
        ] {
            // A Reply-Message holds at most 253 bytes; leave room for substitutions.
            if text.len() > 200 {
                return Err(invalid(item, "longer than 200 bytes (a Reply-Message holds 253)"));
            }
        }

        Ok(Config {
            mode,
            tokens,
            state,
            fsync: raw.fsync,
            require_token: raw.require_token,
            totp_window: u64::from(raw.totp_window),
            hotp_look_ahead: u64::from(raw.hotp_look_ahead),
            split: SplitConfig { separator, otp_position, otp_length },
            user_suffix: raw.user_suffix.clone().unwrap_or_default(),
            user_map: raw.user_map.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from),
            realm,
            lockout: Lockout {
                max_failures: raw.lockout_max_failures,
                duration: u64::from(raw.lockout_duration),
            },
            messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values the shipped mods-available/mfa gives.
    pub(crate) fn shipped() -> RawConfig {
        RawConfig {
            mode: Some("otp".into()),
            tokens: Some("/etc/freeradius/3.0/mods-config/mfa/tokens.json".into()),
            state: Some("/var/lib/freeradius/mfa/state.jsonl".into()),
            require_token: true,
            totp_window: 1,
            hotp_look_ahead: 10,
            separator: Some(",".into()),
            otp_position: Some("last".into()),
            otp_length: 6,
            realm_delimiter: Some("@".into()),
            realm_split: Some("last".into()),
            realm_position: Some("suffix".into()),
            realm_strip: true,
            lockout_max_failures: 5,
            lockout_duration: 300,
            ..RawConfig::default()
        }
    }

    #[test]
    fn shipped_defaults_are_valid() {
        let cfg = Config::from_raw(&shipped()).unwrap();
        assert_eq!(cfg.mode, Mode::Otp);
        assert_eq!(cfg.realm, RealmConfig::default());
        assert_eq!(cfg.messages, Messages::default());
    }

    type Change = Box<dyn Fn(&mut RawConfig)>;

    #[test]
    fn every_error_names_its_item() {
        let cases: Vec<(&str, Change)> = vec![
            ("mode", Box::new(|r| r.mode = Some("sms".into()))),
            ("tokens", Box::new(|r| r.tokens = None)),
            ("state", Box::new(|r| r.state = Some(" ".into()))),
            ("totp_window", Box::new(|r| r.totp_window = 1000)),
            ("hotp_look_ahead", Box::new(|r| r.hotp_look_ahead = 100_000)),
            ("separator", Box::new(|r| r.separator = Some("0".into()))),
            ("otp_position", Box::new(|r| r.otp_position = Some("middle".into()))),
            ("otp_length", Box::new(|r| {
                r.separator = Some(String::new());
                r.otp_length = 4;
            })),
            ("realm.delimiter", Box::new(|r| r.realm_delimiter = Some("#".into()))),
            ("realm.split", Box::new(|r| r.realm_split = Some("both".into()))),
            ("realm.position", Box::new(|r| r.realm_position = Some("left".into()))),
            ("lockout.duration", Box::new(|r| r.lockout_duration = 0)),
            ("messages.locked", Box::new(|r| r.msg_locked = Some("x".repeat(201)))),
        ];
        for (item, change) in cases {
            let mut raw = shipped();
            change(&mut raw);
            let err = Config::from_raw(&raw).unwrap_err();
            assert_eq!(err.item, item, "{err}");
            assert!(err.to_string().contains(item));
        }
    }

    #[test]
    fn backslash_delimiter_defaults_to_prefix_realm() {
        let mut raw = shipped();
        raw.realm_delimiter = Some("\\".into());
        raw.realm_position = None;
        let cfg = Config::from_raw(&raw).unwrap();
        assert_eq!(cfg.realm.position, RealmPosition::Prefix);
    }

    #[test]
    fn backslash_may_be_written_escaped() {
        for written in ["\\", "\\\\"] {
            let mut raw = shipped();
            raw.realm_delimiter = Some(written.into());
            assert_eq!(Config::from_raw(&raw).unwrap().realm.delimiter, '\\');
        }
    }

    #[test]
    fn words_are_case_insensitive() {
        let mut raw = shipped();
        raw.mode = Some("Password+OTP".into());
        assert_eq!(Config::from_raw(&raw).unwrap().mode, Mode::PasswordOtp);
    }
}

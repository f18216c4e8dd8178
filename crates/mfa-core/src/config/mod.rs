//! The module's configuration: every item of the `mfa { }` section declared
//! once ([`declare`], with the declarations in raw.rs and beside each
//! subsection's checks), read as a [`RawConfig`] and checked into a [`Config`].
//!
//! Every error names the item by its path (`push.wait`), so that FreeRADIUS
//! refuses to start with a message an administrator can act on.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::factor::password::{OtpPosition, SplitConfig};
use crate::identity::realm::{RealmConfig, RealmPosition, Split};

pub mod declare;
pub mod duo;
mod gateway;
pub mod limits;
pub mod messages;
pub mod privacyidea;
mod push;
mod raw;
pub mod redis;
pub mod reply;
mod request_time;
mod smtp;
mod warnings;

pub use declare::{Item, Kind, Section, Value};
pub use duo::{DuoConfig, RawDuo};
pub use gateway::{gateway, BodyFormat, Gateway, RawGateway};
pub use limits::Limits;
pub use messages::Messages;
pub use privacyidea::{PiConfig, PollMode, RawPrivacyIdea};
pub use push::{push_settings, Approval, Failmode, Push, RawPush};
pub use raw::{RawConfig, RawLockout, RawRealm, RawStats};
pub use redis::{Address, RawRedis, RedisSettings};
pub use reply::RawRule;
pub use request_time::RequestTime;
pub use smtp::{smtp, RawSmtp, Smtp, SmtpTls};

/// auto mode's default code pattern: 6 to 8 digits.
pub const DEFAULT_AUTO_CODE: &str = "[0-9]{6,8}";

/// A pattern that must match the whole text.
pub fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// auto mode's code pattern, compiled to match the whole part after the separator.
pub fn auto_code(pattern: &str) -> Result<regex::Regex, ConfigError> {
    regex::Regex::new(&anchored(pattern))
        .map_err(|e| invalid("auto_code_pattern", format!("not a regular expression: {e}")))
}

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
    /// The first factor checks the password; then an Access-Challenge asks for the code.
    PasswordThenOtp,
    /// `password+otp` when the field holds both, `password-then-otp` when it holds the password alone.
    Auto,
    /// The first factor checks the password; then a push to the user's device waits for approval.
    Push,
    /// A field that is a code (`auto_code_pattern`, whole) is checked alone, as in `otp`;
    /// anything else is the password: the first factor, then a push, as in `push`.
    OtpOrPush,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Otp => "otp",
            Mode::PasswordOtp => "password+otp",
            Mode::PasswordThenOtp => "password-then-otp",
            Mode::Auto => "auto",
            Mode::Push => "push",
            Mode::OtpOrPush => "otp-or-push",
        }
    }

    /// Whether the module answers with Access-Challenge in this mode.
    pub fn challenges(self) -> bool {
        matches!(self, Mode::PasswordThenOtp | Mode::Auto)
    }
}

/// Challenge-response settings (modes password-then-otp and auto).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub state_key: PathBuf,
    /// Seconds a challenge may be answered in.
    pub timeout: u64,
    /// Wrong answers that end a dialogue.
    pub max_rounds: u8,
    pub code_length: usize,
    /// Seconds a code sent by SMS or e-mail stays good.
    pub code_lifetime: u64,
}

/// Where codes are sent (`sms { }`, `email { }`, `smtp { }`): checked whatever the
/// mode, so that a broken section stops the start before a mode that uses it is
/// chosen; used where the module challenges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    pub sms: Option<Gateway>,
    pub email: Option<Gateway>,
    /// E-mail by SMTP instead of `email`'s HTTP gateway.
    pub smtp: Option<Smtp>,
}

impl Channels {
    /// The text sent with an SMS code: {code}, {correlation}, {user}.
    pub fn sms_message(&self) -> Option<&str> {
        self.sms.as_ref().map(|g| g.message.as_str())
    }

    /// The text sent with an e-mail code, by SMTP or by the HTTP gateway.
    pub fn email_message(&self) -> Option<&str> {
        match (&self.smtp, &self.email) {
            (Some(smtp), _) => Some(&smtp.message),
            (None, gateway) => gateway.as_ref().map(|g| g.message.as_str()),
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

/// `stats { }`: where and how often the counters are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsFile {
    pub file: PathBuf,
    pub interval: Duration,
}

/// The checked configuration of one module instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub tokens: PathBuf,
    pub state: PathBuf,
    pub fsync: bool,
    /// Where the state between requests is kept: this server's journal (`state`) or Redis.
    pub store: StoreChoice,
    pub require_token: bool,
    /// Say "locked" and "not enrolled" before a password was checked (else one answer for all).
    pub detailed_messages: bool,
    pub totp_window: u64,
    pub hotp_look_ahead: u64,
    pub split: SplitConfig,
    pub user_suffix: String,
    /// Token-store names compared without case (the store is read in lower case).
    pub ignore_case: bool,
    pub user_map: Option<PathBuf>,
    pub realm: RealmConfig,
    pub lockout: Lockout,
    /// Set when `stats.file` is: the counters are written there.
    pub stats: Option<StatsFile>,
    pub limits: Limits,
    pub messages: Messages,
    /// Set in the modes that challenge.
    pub challenge: Option<Challenge>,
    pub channels: Channels,
    /// Set in mode push.
    pub push: Option<Push>,
    /// auto mode: what after the separator counts as a code (a regular expression
    /// matched against the whole part).
    pub auto_code_pattern: String,
    /// Set with backend = privacyidea: privacyIDEA decides, the token file is not used.
    pub privacyidea: Option<PiConfig>,
    /// Set with backend = duo: Duo's Auth API decides, the token file is not used.
    pub duo: Option<DuoConfig>,
    /// Reply attributes for an accepted login (the engine compiles them).
    pub reply: Vec<RawRule>,
}

/// `backend`: who checks the second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Local,
    PrivacyIdea,
    Duo,
}

/// `state_store`: this server's state journal, or a Redis shared by a farm of servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    Journal,
    Redis(RedisSettings),
}

/// A configuration item that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The item's path: `mode`, `push.wait`, `messages.locked`.
    pub item: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(item: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { item: item.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid '{}': {}", self.item, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(item: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(item, message)
}

/// One of a fixed set of words, or an error listing them.
fn choice<T: Copy>(item: &str, value: Option<&str>, default: T, options: &[(&str, T)]) -> Result<T, ConfigError> {
    let Some(value) = value else { return Ok(default) };
    options.iter().find(|(name, _)| name.eq_ignore_ascii_case(value.trim())).map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        invalid(item, format!("\"{value}\" is not one of: {}", names.join(", ")))
    })
}

/// A path item: None when unset or blank.
fn optional_path(value: &Option<String>) -> Option<PathBuf> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn required_path(item: &str, value: Option<&str>) -> Result<PathBuf, ConfigError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => Err(invalid(item, "a file name is required")),
    }
}

impl Config {
    /// Checks every item: first what each declares (ranges, lengths), then how
    /// they go together. The files themselves are opened by the engine, which
    /// reports unreadable ones under the same item names.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        declare::check_declared(raw)?;
        let mode = choice(
            "mode",
            raw.mode.as_deref(),
            Mode::Otp,
            &[
                ("otp", Mode::Otp),
                ("password+otp", Mode::PasswordOtp),
                ("password-then-otp", Mode::PasswordThenOtp),
                ("auto", Mode::Auto),
                ("push", Mode::Push),
                ("otp-or-push", Mode::OtpOrPush),
            ],
        )?;
        let tokens = required_path("tokens", raw.tokens.as_deref())?;
        let state = required_path("state", raw.state.as_deref())?;
        let store =
            match choice("state_store", raw.state_store.as_deref(), false, &[("journal", false), ("redis", true)])? {
                true => StoreChoice::Redis(redis::redis_settings(&raw.redis)?),
                false => StoreChoice::Journal,
            };

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

        let realm = realm_settings(&raw.realm)?;
        if raw.lockout.max_failures > 0 && raw.lockout.duration == 0 {
            return Err(invalid("lockout.duration", "must be at least 1 second when max_failures is set"));
        }

        let backend = choice(
            "backend",
            raw.backend.as_deref(),
            Backend::Local,
            &[("local", Backend::Local), ("privacyidea", Backend::PrivacyIdea), ("duo", Backend::Duo)],
        )?;
        if mode == Mode::OtpOrPush && backend != Backend::Local {
            return Err(invalid("mode", "otp-or-push is for the local backend (the token file and the push provider)"));
        }
        // A login that waits on a backend or a push may also wait on the store, in the same request.
        let store_wait = match &store {
            StoreChoice::Redis(settings) => settings.budget(),
            StoreChoice::Journal => Duration::ZERO,
        };
        let request_time = RequestTime { max_request_time: raw.server_max_request_time, store_wait };
        let privacyidea = match backend {
            Backend::PrivacyIdea => Some(privacyidea::settings(&raw.privacyidea, request_time)?),
            _ => None,
        };
        // Checked whatever the backend, as every number is (its declared range is wider).
        duo::signature_version(&raw.duo)?;
        let duo = match backend {
            Backend::Duo => Some(duo::settings(&raw.duo, mode, request_time)?),
            _ => None,
        };

        let push_configured = !raw.push.url.as_deref().map(str::trim).unwrap_or("").is_empty();
        // With Duo, mode push is Duo's push: the generic provider's section is not used.
        let push = if duo.is_none() && (matches!(mode, Mode::Push | Mode::OtpOrPush) || push_configured) {
            Some(push_settings(&raw.push, request_time)?)
        } else {
            push::check_unused(&raw.push)?;
            None
        };
        // Push answers may come back as a challenge round too: the State key is needed.
        let duo_challenges = duo.as_ref().is_some_and(|d| d.approval == Approval::Challenge);
        // Duo in a farm: what a login published for its re-sends on other servers is sealed with it.
        let duo_farm = duo.is_some() && matches!(store, StoreChoice::Redis(_));
        let challenge = if mode.challenges() || push.is_some() || privacyidea.is_some() || duo_challenges || duo_farm {
            Some(challenge_settings(raw)?)
        } else {
            None
        };
        let channels = channels(raw)?;

        let auto_code_pattern = raw.auto_code_pattern.clone().unwrap_or_else(|| DEFAULT_AUTO_CODE.to_string());
        auto_code(&auto_code_pattern)?;

        Ok(Config {
            privacyidea,
            duo,
            reply: raw.reply.clone(),
            auto_code_pattern,
            push,
            challenge,
            channels,
            mode,
            tokens,
            state,
            fsync: raw.fsync,
            store,
            require_token: raw.require_token,
            detailed_messages: raw.detailed_messages,
            totp_window: u64::from(raw.totp_window),
            hotp_look_ahead: u64::from(raw.hotp_look_ahead),
            split: SplitConfig { separator, otp_position, otp_length },
            user_suffix: raw.user_suffix.clone().unwrap_or_default(),
            ignore_case: raw.ignore_case,
            user_map: raw.user_map.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from),
            realm,
            lockout: Lockout { max_failures: raw.lockout.max_failures, duration: u64::from(raw.lockout.duration) },
            stats: optional_path(&raw.stats.file)
                .map(|file| StatsFile { file, interval: Duration::from_secs(u64::from(raw.stats.interval)) }),
            limits: raw.limits.clone(),
            messages: raw.messages.clone(),
        })
    }
}

fn realm_settings(raw: &RawRealm) -> Result<RealmConfig, ConfigError> {
    let delimiter = match raw.delimiter.as_deref() {
        None => '@',
        // FreeRADIUS keeps backslashes of double-quoted strings as written, so
        // `delimiter = "\\"` arrives as two characters; accept it and a single one.
        Some("@") => '@',
        Some("\\") | Some("\\\\") => '\\',
        Some(d) => return Err(invalid("realm.delimiter", format!("\"{d}\" is not \"@\" or \"\\\\\""))),
    };
    let default_position = if delimiter == '\\' { RealmPosition::Prefix } else { RealmPosition::Suffix };
    Ok(RealmConfig {
        delimiter,
        split: choice(
            "realm.split",
            raw.split.as_deref(),
            Split::Last,
            &[("first", Split::First), ("last", Split::Last)],
        )?,
        position: choice(
            "realm.position",
            raw.position.as_deref(),
            default_position,
            &[("suffix", RealmPosition::Suffix), ("prefix", RealmPosition::Prefix)],
        )?,
        strip: raw.strip,
    })
}

fn challenge_settings(raw: &RawConfig) -> Result<Challenge, ConfigError> {
    Ok(Challenge {
        state_key: required_path("state_key", raw.state_key.as_deref())?,
        timeout: u64::from(raw.challenge_timeout),
        max_rounds: raw.max_rounds as u8,
        code_length: raw.code_length as usize,
        code_lifetime: u64::from(raw.code_lifetime),
    })
}

fn channels(raw: &RawConfig) -> Result<Channels, ConfigError> {
    let sms = gateway("sms", &raw.sms)?;
    let email = gateway("email", &raw.email)?;
    let smtp = smtp(&raw.smtp)?;
    if smtp.is_some() && email.is_some() {
        return Err(invalid("smtp.server", "e-mail goes by SMTP or by email.url, not both: leave one unset"));
    }
    Ok(Channels { sms, email, smtp })
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
            realm: RawRealm {
                delimiter: Some("@".into()),
                split: Some("last".into()),
                position: Some("suffix".into()),
                strip: true,
            },
            lockout: RawLockout { max_failures: 5, duration: 300 },
            ..RawConfig::default()
        }
    }

    #[test]
    fn every_declaration_fits_a_freeradius_table() {
        let paths = declare::paths(RawConfig::ITEMS);
        let mut seen = std::collections::HashSet::new();
        for (path, item) in &paths {
            assert!(seen.insert(path.clone()), "{path} is declared twice");
            assert!(!item.name.contains('\0') && !item.default.unwrap_or("").contains('\0'), "{path}");
        }
        // An empty section is valid: the declared defaults check.
        assert!(Config::from_raw(&RawConfig::default()).is_ok());
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
            // Whatever the separator, which decides whether it is used.
            ("otp_length", Box::new(|r| r.otp_length = 9)),
            ("duo.signature_version", Box::new(|r| r.duo.signature_version = 3)),
            ("sms.url", Box::new(|r| r.sms.url = Some("ftp://sms.example.com/".into()))),
            (
                "email.message",
                Box::new(|r| {
                    r.email.url = Some("https://mail.example.com/send".into());
                    r.email.body = Some("{}".into());
                    r.email.message = Some("no code here".into());
                }),
            ),
            ("smtp.from", Box::new(|r| r.smtp.server = Some("mail.example.com".into()))),
            ("push.failmode", Box::new(|r| r.push.failmode = Some("open".into()))),
            ("realm.delimiter", Box::new(|r| r.realm.delimiter = Some("#".into()))),
            ("realm.split", Box::new(|r| r.realm.split = Some("both".into()))),
            ("realm.position", Box::new(|r| r.realm.position = Some("left".into()))),
            ("lockout.duration", Box::new(|r| r.lockout.duration = 0)),
            ("auto_code_pattern", Box::new(|r| r.auto_code_pattern = Some("[0-9".into()))),
            ("messages.locked", Box::new(|r| r.messages.locked = "x".repeat(201))),
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
        raw.realm.delimiter = Some("\\".into());
        raw.realm.position = None;
        let cfg = Config::from_raw(&raw).unwrap();
        assert_eq!(cfg.realm.position, RealmPosition::Prefix);
    }

    #[test]
    fn backslash_may_be_written_escaped() {
        for written in ["\\", "\\\\"] {
            let mut raw = shipped();
            raw.realm.delimiter = Some(written.into());
            assert_eq!(Config::from_raw(&raw).unwrap().realm.delimiter, '\\');
        }
    }

    fn push_raw() -> RawConfig {
        let mut raw = shipped();
        raw.mode = Some("push".into());
        raw.push = RawPush {
            url: Some("https://push.example.com/".into()),
            timeout: 5,
            skip_failing: 30,
            poll_interval: 2,
            wait: 15,
            max_waiting: 8,
            ..RawPush::default()
        };
        raw.server_max_request_time = 30;
        raw.state_key = Some("/tmp/state.key".into());
        raw.challenge_timeout = 180;
        raw.max_rounds = 3;
        raw.code_length = 6;
        raw.code_lifetime = 300;
        raw
    }

    #[test]
    fn push_settings_are_checked_against_max_request_time() {
        let cfg = Config::from_raw(&push_raw()).unwrap();
        let push = cfg.push.unwrap();
        assert_eq!(push.urls, vec!["https://push.example.com"]);
        assert_eq!(push.failmode, Failmode::Secure);

        let mut raw = push_raw();
        raw.push.wait = 20; // 20 + 2 x 5 is not less than 30
        let err = Config::from_raw(&raw).unwrap_err();
        assert_eq!(err.item, "push.wait");
        assert!(err.message.contains("max_request_time"), "{err}");

        // A secondary doubles the create: 2 x 11 + 11 is not less than 30, though
        // 5 + 2 x 11 is.
        let mut raw = push_raw();
        (raw.push.wait, raw.push.timeout) = (5, 11);
        assert!(Config::from_raw(&raw).is_ok(), "one provider: 27 s at most");
        raw.push.secondary_url = Some("https://push2.example.com".into());
        let err = Config::from_raw(&raw).unwrap_err();
        assert_eq!(err.item, "push.wait");
        assert!(err.message.contains("33 s (2 providers x timeout 11"), "{err}");

        // With the Redis store, the call that waits for the push may wait on it too:
        // 3 x timeout_ms. 15 + 2 x 5 + 3 x 2 s is not less than 30.
        let mut raw = push_raw();
        raw.push.wait = 15;
        assert!(Config::from_raw(&raw).is_ok(), "the journal: 25 s");
        raw.state_store = Some("redis".into());
        raw.redis.timeout_ms = 2000;
        let err = Config::from_raw(&raw).unwrap_err();
        assert_eq!(err.item, "push.wait");
        assert!(err.message.contains("may take 25 s (wait 15 + 2 x timeout 5) and 6.0 s more on the Redis"), "{err}");
        raw.redis.timeout_ms = 500;
        assert!(Config::from_raw(&raw).is_ok(), "25 + 1.5 s");

        let mut raw = push_raw();
        raw.push.url = None;
        assert_eq!(Config::from_raw(&raw).unwrap_err().item, "push.url");
        let mut raw = push_raw();
        raw.push.failmode = Some("open".into());
        assert_eq!(Config::from_raw(&raw).unwrap_err().item, "push.failmode");
    }

    #[test]
    fn words_are_case_insensitive() {
        let mut raw = shipped();
        raw.mode = Some("Password+OTP".into());
        assert_eq!(Config::from_raw(&raw).unwrap().mode, Mode::PasswordOtp);
    }
}

//! The module's configuration: the raw items of the `mfa { }` section, as
//! FreeRADIUS's CONF_PARSER hands them over, checked into a [`Config`].
//!
//! Every error names the item, so that FreeRADIUS refuses to start with a
//! message an administrator can act on.

use std::fmt;
use std::path::PathBuf;

use crate::backend::mapping::{RawRule, Rule};
use crate::backend::privacyidea::PiConfig;
use crate::factor::password::{OtpPosition, SplitConfig};
use crate::identity::realm::{RealmConfig, RealmPosition, Split};

mod privacyidea;
pub use privacyidea::RawPrivacyIdea;

/// auto mode's default code pattern: 6 to 8 digits.
pub const DEFAULT_AUTO_CODE: &str = "[0-9]{6,8}";

/// A pattern that must match the whole text.
pub fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
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
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Otp => "otp",
            Mode::PasswordOtp => "password+otp",
            Mode::PasswordThenOtp => "password-then-otp",
            Mode::Auto => "auto",
            Mode::Push => "push",
        }
    }

    /// Whether the module answers with Access-Challenge in this mode.
    pub fn challenges(self) -> bool {
        matches!(self, Mode::PasswordThenOtp | Mode::Auto)
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
    pub state_key: Option<String>,
    pub challenge_timeout: u32,
    pub max_rounds: u32,
    pub code_length: u32,
    pub code_lifetime: u32,
    pub sms: RawGateway,
    pub email: RawGateway,
    pub msg_prompt_code: Option<String>,
    pub msg_prompt_sent: Option<String>,
    pub msg_menu_header: Option<String>,
    pub msg_menu_item: Option<String>,
    pub msg_menu_footer: Option<String>,
    pub msg_bad_choice: Option<String>,
    pub msg_wrong_answer: Option<String>,
    pub msg_bad_state: Option<String>,
    pub msg_send_failed: Option<String>,
    pub push: RawPush,
    pub msg_push_denied: Option<String>,
    pub msg_push_timeout: Option<String>,
    pub msg_push_unavailable: Option<String>,
    pub msg_push_busy: Option<String>,
    pub msg_push_prompt: Option<String>,
    pub msg_push_pending: Option<String>,
    pub msg_push_menu: Option<String>,
    /// The server's max_request_time (radiusd.conf), 0 when unknown.
    pub server_max_request_time: u32,
    pub auto_code_pattern: Option<String>,
    pub ignore_case: bool,
    /// `local` (the token file) or `privacyidea`.
    pub backend: Option<String>,
    pub privacyidea: RawPrivacyIdea,
    /// The `reply <attribute> { }` sections.
    pub reply: Vec<RawRule>,
    pub msg_rejected: Option<String>,
}

/// The items of the `push { }` section, before checking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawPush {
    pub url: Option<String>,
    pub secondary_url: Option<String>,
    pub authorization: Option<String>,
    pub timeout: u32,
    pub skip_failing: u32,
    pub poll_interval: u32,
    pub wait: u32,
    pub max_waiting: u32,
    pub failmode: Option<String>,
    pub message: Option<String>,
    pub approval: Option<String>,
    pub when_busy: Option<String>,
}

/// The items of an `sms { }` or `email { }` section, before checking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawGateway {
    pub url: Option<String>,
    pub authorization: Option<String>,
    pub body: Option<String>,
    pub message: Option<String>,
    pub timeout: u32,
}

/// What a user is told on each kind of reject, and the prompts of a challenge.
/// `{seconds}`, `{digits}`, `{index}`, `{description}`, `{total}`, `{destination}`
/// and `{correlation}` are replaced where they apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Messages {
    pub wrong_code: String,
    pub locked: String,
    pub no_token: String,
    pub bad_format: String,
    pub no_code: String,
    pub bad_user: String,
    pub internal: String,
    pub prompt_code: String,
    pub prompt_sent: String,
    pub menu_header: String,
    pub menu_item: String,
    pub menu_footer: String,
    pub bad_choice: String,
    pub wrong_answer: String,
    pub bad_state: String,
    pub send_failed: String,
    pub push_denied: String,
    pub push_timeout: String,
    pub push_unavailable: String,
    pub push_busy: String,
    pub push_prompt: String,
    pub push_pending: String,
    pub push_menu: String,
    /// privacyIDEA said no (its own reason goes to the log only).
    pub rejected: String,
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
            prompt_code: "Enter OTP:".into(),
            prompt_sent: "Enter the code sent to {destination} ({correlation}):".into(),
            menu_header: "Choose how to confirm this login:".into(),
            menu_item: "{index}. {description}".into(),
            menu_footer: "Enter 1 to {total}:".into(),
            bad_choice: "Enter a number from 1 to {total}:".into(),
            wrong_answer: "Wrong code, try again:".into(),
            bad_state: "This login has expired or is not valid, please start again".into(),
            send_failed: "The code could not be sent, try again later".into(),
            push_denied: "The login was denied on your device".into(),
            push_timeout: "No answer from your device in time".into(),
            push_unavailable: "Approval by push is unavailable, try again later".into(),
            push_busy: "Too many logins are waiting for approval, try again shortly".into(),
            push_prompt: "Approve on your device, then press OK ({correlation})".into(),
            push_pending: "Not approved yet: approve on your device, then press OK".into(),
            push_menu: "Approve on your device (push)".into(),
            rejected: "Wrong user name, PIN or code".into(),
        }
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
    pub timeout: std::time::Duration,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("url", &self.url)
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("body", &self.body)
            .field("message", &self.message)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a push that cannot be done (provider unreachable, failing, answering garbage) leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failmode {
    /// Reject.
    Secure,
    /// Accept on the first factor alone, logged as such.
    Safe,
}

/// How a login waits for the answer to a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    /// The request waits (holding a server thread) until the answer or `wait`.
    Wait,
    /// Access-Challenge at once ("approve, then press OK"); the answer round checks.
    Challenge,
}

/// Push approval settings (mode push, and push as a menu entry or in auto mode).
#[derive(Clone, PartialEq, Eq)]
pub struct Push {
    pub approval: Approval,
    /// With `Approval::Wait`, past `max_waiting`: challenge (true) or refuse (false).
    pub busy_challenges: bool,
    pub urls: Vec<String>,
    /// The Authorization header's value: a secret.
    pub authorization: Option<String>,
    /// Bound on one HTTP call.
    pub timeout: std::time::Duration,
    /// How long a failing provider is skipped.
    pub skip_failing: std::time::Duration,
    pub poll_interval: std::time::Duration,
    /// How long a login waits for the answer.
    pub wait: std::time::Duration,
    /// Logins waiting at once, at most; more are refused (the server keeps threads for others).
    pub max_waiting: usize,
    pub failmode: Failmode,
    /// What the device shows: {user}, {client}, {nas}.
    pub message: String,
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("urls", &self.urls.len())
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("wait", &self.wait)
            .field("max_waiting", &self.max_waiting)
            .field("failmode", &self.failmode)
            .finish()
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
    pub sms: Option<Gateway>,
    pub email: Option<Gateway>,
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
    /// Token-store names compared without case (the store is read in lower case).
    pub ignore_case: bool,
    pub user_map: Option<PathBuf>,
    pub realm: RealmConfig,
    pub lockout: Lockout,
    pub messages: Messages,
    /// Set in the modes that challenge.
    pub challenge: Option<Challenge>,
    /// Set in mode push.
    pub push: Option<Push>,
    /// auto mode: what after the separator counts as a code (a regular expression
    /// matched against the whole part).
    pub auto_code_pattern: String,
    /// Set with backend = privacyidea: privacyIDEA decides, the token file is not used.
    pub privacyidea: Option<PiConfig>,
    /// Reply attributes for an accepted login (checked: each compiles).
    pub reply: Vec<RawRule>,
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
    options.iter().find(|(name, _)| name.eq_ignore_ascii_case(value.trim())).map(|(_, v)| *v).ok_or_else(|| {
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
            &[
                ("otp", Mode::Otp),
                ("password+otp", Mode::PasswordOtp),
                ("password-then-otp", Mode::PasswordThenOtp),
                ("auto", Mode::Auto),
                ("push", Mode::Push),
            ],
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
            Some(d) => return Err(invalid("realm.delimiter", format!("\"{d}\" is not \"@\" or \"\\\\\""))),
        };
        let default_position = if delimiter == '\\' { RealmPosition::Prefix } else { RealmPosition::Suffix };
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
            prompt_code: message(&raw.msg_prompt_code, &defaults.prompt_code),
            prompt_sent: message(&raw.msg_prompt_sent, &defaults.prompt_sent),
            menu_header: message(&raw.msg_menu_header, &defaults.menu_header),
            menu_item: message(&raw.msg_menu_item, &defaults.menu_item),
            menu_footer: message(&raw.msg_menu_footer, &defaults.menu_footer),
            bad_choice: message(&raw.msg_bad_choice, &defaults.bad_choice),
            wrong_answer: message(&raw.msg_wrong_answer, &defaults.wrong_answer),
            bad_state: message(&raw.msg_bad_state, &defaults.bad_state),
            send_failed: message(&raw.msg_send_failed, &defaults.send_failed),
            push_denied: message(&raw.msg_push_denied, &defaults.push_denied),
            push_timeout: message(&raw.msg_push_timeout, &defaults.push_timeout),
            push_unavailable: message(&raw.msg_push_unavailable, &defaults.push_unavailable),
            push_busy: message(&raw.msg_push_busy, &defaults.push_busy),
            push_prompt: message(&raw.msg_push_prompt, &defaults.push_prompt),
            push_pending: message(&raw.msg_push_pending, &defaults.push_pending),
            push_menu: message(&raw.msg_push_menu, &defaults.push_menu),
            rejected: message(&raw.msg_rejected, &defaults.rejected),
        };
        for (item, text) in [
            ("messages.wrong_code", &messages.wrong_code),
            ("messages.locked", &messages.locked),
            ("messages.no_token", &messages.no_token),
            ("messages.bad_format", &messages.bad_format),
            ("messages.no_code", &messages.no_code),
            ("messages.bad_user", &messages.bad_user),
            ("messages.internal", &messages.internal),
            ("messages.prompt_code", &messages.prompt_code),
            ("messages.prompt_sent", &messages.prompt_sent),
            ("messages.menu_header", &messages.menu_header),
            ("messages.menu_item", &messages.menu_item),
            ("messages.menu_footer", &messages.menu_footer),
            ("messages.bad_choice", &messages.bad_choice),
            ("messages.wrong_answer", &messages.wrong_answer),
            ("messages.bad_state", &messages.bad_state),
            ("messages.send_failed", &messages.send_failed),
            ("messages.push_denied", &messages.push_denied),
            ("messages.push_timeout", &messages.push_timeout),
            ("messages.push_unavailable", &messages.push_unavailable),
            ("messages.push_busy", &messages.push_busy),
            ("messages.push_prompt", &messages.push_prompt),
            ("messages.push_pending", &messages.push_pending),
            ("messages.push_menu", &messages.push_menu),
            ("messages.rejected", &messages.rejected),
        ] {
            // A Reply-Message holds at most 253 bytes; leave room for substitutions.
            if text.len() > 200 {
                return Err(invalid(item, "longer than 200 bytes (a Reply-Message holds 253)"));
            }
        }

        let privacyidea =
            match choice("backend", raw.backend.as_deref(), false, &[("local", false), ("privacyidea", true)])? {
                true => Some(privacyidea::settings(&raw.privacyidea, raw.server_max_request_time)?),
                false => None,
            };
        for rule in &raw.reply {
            Rule::from_raw(rule).map_err(|message| invalid("reply", format!("reply {}: {message}", rule.attribute)))?;
        }

        let push_configured = !raw.push.url.as_deref().map(str::trim).unwrap_or("").is_empty();
        let push = if mode == Mode::Push || push_configured { Some(push_settings(raw)?) } else { None };
        // Push answers may come back as a challenge round too: the State key is needed.
        let challenge = if mode.challenges() || push.is_some() || privacyidea.is_some() {
            Some(challenge_settings(raw)?)
        } else {
            None
        };

        let auto_code_pattern = raw.auto_code_pattern.clone().unwrap_or_else(|| DEFAULT_AUTO_CODE.to_string());
        if let Err(e) = regex::Regex::new(&anchored(&auto_code_pattern)) {
            return Err(invalid("auto_code_pattern", format!("not a regular expression: {e}")));
        }

        Ok(Config {
            privacyidea,
            reply: raw.reply.clone(),
            auto_code_pattern,
            push,
            challenge,
            mode,
            tokens,
            state,
            fsync: raw.fsync,
            require_token: raw.require_token,
            totp_window: u64::from(raw.totp_window),
            hotp_look_ahead: u64::from(raw.hotp_look_ahead),
            split: SplitConfig { separator, otp_position, otp_length },
            user_suffix: raw.user_suffix.clone().unwrap_or_default(),
            ignore_case: raw.ignore_case,
            user_map: raw.user_map.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from),
            realm,
            lockout: Lockout { max_failures: raw.lockout_max_failures, duration: u64::from(raw.lockout_duration) },
            messages,
        })
    }
}

fn challenge_settings(raw: &RawConfig) -> Result<Challenge, ConfigError> {
    let state_key = required_path("state_key", raw.state_key.as_deref())?;
    if !(10..=3600).contains(&raw.challenge_timeout) {
        return Err(invalid("challenge_timeout", "must be 10 to 3600 seconds"));
    }
    if !(1..=10).contains(&raw.max_rounds) {
        return Err(invalid("max_rounds", "must be 1 to 10"));
    }
    if !(4..=10).contains(&raw.code_length) {
        return Err(invalid("code_length", "must be 4 to 10 digits"));
    }
    if !(30..=3600).contains(&raw.code_lifetime) {
        return Err(invalid("code_lifetime", "must be 30 to 3600 seconds"));
    }
    Ok(Challenge {
        state_key,
        timeout: u64::from(raw.challenge_timeout),
        max_rounds: raw.max_rounds as u8,
        code_length: raw.code_length as usize,
        code_lifetime: u64::from(raw.code_lifetime),
        sms: gateway("sms", &raw.sms)?,
        email: gateway("email", &raw.email)?,
    })
}

fn push_settings(raw: &RawConfig) -> Result<Push, ConfigError> {
    let p = &raw.push;
    let mut urls = Vec::new();
    for (item, url) in [("push.url", &p.url), ("push.secondary_url", &p.secondary_url)] {
        let url = url.as_deref().map(str::trim).unwrap_or("");
        if url.is_empty() {
            continue;
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                item,
                format!("\"{}\" is not an http:// or https:// URL", crate::channel::http::redact(url)),
            ));
        }
        urls.push(url.trim_end_matches('/').to_string());
    }
    if p.url.as_deref().map(str::trim).unwrap_or("").is_empty() {
        return Err(invalid("push.url", "mode push needs the push provider's URL"));
    }
    if !(1..=30).contains(&p.timeout) {
        return Err(invalid("push.timeout", "must be 1 to 30 seconds"));
    }
    if !(1..=60).contains(&p.poll_interval) {
        return Err(invalid("push.poll_interval", "must be 1 to 60 seconds"));
    }
    if !(5..=600).contains(&p.wait) {
        return Err(invalid("push.wait", "must be 5 to 600 seconds"));
    }
    // The server abandons a request after max_request_time: a wait (plus the calls that
    // create the push and ask for its status) must end before it. Creating the push may
    // try every provider, a timeout each; when that outlasts the wait, the cancel follows.
    let create = urls.len() as u32 * p.timeout;
    let longest = create.max(p.wait + p.timeout) + p.timeout;
    if raw.server_max_request_time > 0 && longest >= raw.server_max_request_time {
        let how = if create > p.wait + p.timeout {
            format!("{} providers x timeout {} to create it, then a cancel", urls.len(), p.timeout)
        } else {
            format!("wait {} + 2 x timeout {}", p.wait, p.timeout)
        };
        return Err(invalid(
            "push.wait",
            format!(
                "a push may take {longest} s ({how}), not less than the server's \
                 max_request_time of {} s: lower it, or raise max_request_time in radiusd.conf",
                raw.server_max_request_time
            ),
        ));
    }
    if !(1..=10_000).contains(&p.max_waiting) {
        return Err(invalid("push.max_waiting", "must be 1 to 10000"));
    }
    let failmode = choice(
        "push.failmode",
        p.failmode.as_deref(),
        Failmode::Secure,
        &[("secure", Failmode::Secure), ("safe", Failmode::Safe)],
    )?;
    let approval = choice(
        "push.approval",
        p.approval.as_deref(),
        Approval::Wait,
        &[("wait", Approval::Wait), ("challenge", Approval::Challenge)],
    )?;
    let busy_challenges =
        choice("push.when_busy", p.when_busy.as_deref(), true, &[("challenge", true), ("reject", false)])?;
    Ok(Push {
        approval,
        busy_challenges,
        urls,
        authorization: p.authorization.clone().filter(|a| !a.is_empty()),
        timeout: std::time::Duration::from_secs(u64::from(p.timeout)),
        skip_failing: std::time::Duration::from_secs(u64::from(p.skip_failing)),
        poll_interval: std::time::Duration::from_secs(u64::from(p.poll_interval)),
        wait: std::time::Duration::from_secs(u64::from(p.wait)),
        max_waiting: p.max_waiting as usize,
        failmode,
        message: p.message.clone().unwrap_or_else(|| "Approve login to {client} for {user}?".into()),
    })
}

/// The name of an item of the `sms { }` or `email { }` section, for error messages;
/// anything but url, authorization, timeout and message is about the body.
pub fn gateway_item(section: &str, name: &str) -> &'static str {
    match (section == "sms", name) {
        (true, "url") => "sms.url",
        (true, "authorization") => "sms.authorization",
        (true, "timeout") => "sms.timeout",
        (true, "message") => "sms.message",
        (true, _) => "sms.body",
        (false, "url") => "email.url",
        (false, "authorization") => "email.authorization",
        (false, "timeout") => "email.timeout",
        (false, "message") => "email.message",
        (false, _) => "email.body",
    }
}

/// A gateway section; None when its url is empty (the method is then not offered).
fn gateway(section: &'static str, raw: &RawGateway) -> Result<Option<Gateway>, ConfigError> {
    let item = |name: &str| gateway_item(section, name);
    let url = raw.url.as_deref().map(str::trim).unwrap_or("");
    if url.is_empty() {
        return Ok(None);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid(
            item("url"),
            format!("\"{}\" is not an http:// or https:// URL", crate::channel::http::redact(url)),
        ));
    }
    if !(1..=30).contains(&raw.timeout) {
        return Err(invalid(item("timeout"), "must be 1 to 30 seconds"));
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
        timeout: std::time::Duration::from_secs(u64::from(raw.timeout)),
    }))
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
            (
                "otp_length",
                Box::new(|r| {
                    r.separator = Some(String::new());
                    r.otp_length = 4;
                }),
            ),
            ("realm.delimiter", Box::new(|r| r.realm_delimiter = Some("#".into()))),
            ("realm.split", Box::new(|r| r.realm_split = Some("both".into()))),
            ("realm.position", Box::new(|r| r.realm_position = Some("left".into()))),
            ("lockout.duration", Box::new(|r| r.lockout_duration = 0)),
            ("auto_code_pattern", Box::new(|r| r.auto_code_pattern = Some("[0-9".into()))),
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

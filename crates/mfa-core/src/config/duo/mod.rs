//! The `duo { }` section (backend = duo), checked: Duo's Auth API v2 decides the
//! second factor (push, passcodes) in modes otp, password+otp, auto and push.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{choice, invalid, optional_path, Approval, ConfigError, Failmode, Mode, RequestTime};

pub mod endpoint;

crate::section! {
    /// The items of the `duo { }` section, before checking.
    pub struct RawDuo {
        /// Duo's API hostname (`api-XXXXXXXX.duosecurity.com`), reached over https.
        api_host: Option<String>,
        /// The Auth API application's integration key (ikey).
        integration_key: Option<String>,
        /// The application's secret key (skey); or `secret_key_file`.
        secret_key: Option<String> [secret()],
        /// A file holding the secret key, mode 0640 or stricter, read at start-up.
        secret_key_file: Option<String>,
        timeout: u32 = "4" [range(1, 60, "seconds")],
        /// Duo unreachable or failing: `secure` (reject) or `safe` (accept on the first factor).
        failmode: Option<String> = "secure",
        /// Users Duo does not know (preauth says `enroll`): `reject` or `allow`.
        enroll: Option<String> = "reject",
        /// How long a login waits for the push to be answered.
        wait: u32 = "15" [range(5, 600, "seconds")],
        poll_interval: u32 = "2" [range(1, 60, "seconds")],
        max_waiting: u32 = "8" [range(1, 10_000, "logins")],
        /// `wait` (the request polls) or `challenge` (Access-Challenge at once; the answer round asks).
        approval: Option<String> = "wait",
        /// Duo's request signature: 5 (HMAC-SHA512 with the body's hash) or 2.
        signature_version: u32 = "5" [range(2, 5, "")],
        /// CAs to verify Duo's certificate with instead of the system's (a relay behind a private CA).
        ca_file: Option<String>,
        ca_path: Option<String>,
    }
}

/// What preauth's `enroll` (a user Duo does not know) leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enroll {
    Reject,
    /// Accept on the first factor alone, logged.
    Allow,
}

/// Where the secret key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretKey {
    Inline(String),
    /// Read by the engine at start-up (its mode checked).
    File(PathBuf),
}

/// The checked `duo { }` section.
#[derive(Clone, PartialEq, Eq)]
pub struct DuoConfig {
    /// `api-XXXX.duosecurity.com`, or `http://127.0.0.1:port` (loopback only: tests, a local relay).
    pub api_host: String,
    pub integration_key: String,
    pub secret_key: SecretKey,
    pub timeout: Duration,
    pub failmode: Failmode,
    pub enroll: Enroll,
    pub wait: Duration,
    pub poll_interval: Duration,
    pub max_waiting: usize,
    pub approval: Approval,
    /// The longest a login may take (`wait + 3 x timeout`, or `2 x timeout` in mode
    /// otp), which the start-up check keeps under `max_request_time`: also the
    /// longest a NAS's re-send waits for the login it joined.
    pub longest: Duration,
    pub signature_version: u8,
    /// The CAs trusted for `api_host` when set (those alone), else the system's.
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
}

impl fmt::Debug for DuoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = match &self.secret_key {
            SecretKey::Inline(_) => "<redacted>".to_string(),
            SecretKey::File(path) => path.display().to_string(),
        };
        f.debug_struct("DuoConfig")
            .field("api_host", &self.api_host)
            .field("integration_key", &self.integration_key)
            .field("secret_key", &secret)
            .field("timeout", &self.timeout)
            .field("failmode", &self.failmode)
            .field("enroll", &self.enroll)
            .field("wait", &self.wait)
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .finish()
    }
}

/// A usable secret key: one line, no spaces. The error never quotes it.
pub fn check_secret_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the secret key is empty".into());
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the secret key holds a space, a line break or another control character".into());
    }
    Ok(())
}

/// Checks the section for `mode`. A preauth, an auth and a wait with polls, with
/// the state store's wait, must end before the server's max_request_time.
pub fn settings(raw: &RawDuo, mode: Mode, request_time: RequestTime) -> Result<DuoConfig, ConfigError> {
    if !matches!(mode, Mode::Otp | Mode::PasswordOtp | Mode::Auto | Mode::Push) {
        return Err(invalid(
            "mode",
            format!("backend duo works in modes otp, password+otp, auto and push, not {}", mode.name()),
        ));
    }
    let api_host = raw.api_host.as_deref().map(str::trim).unwrap_or("").to_string();
    if api_host.is_empty() {
        return Err(invalid("duo.api_host", "backend duo needs Duo's API hostname"));
    }
    endpoint::parse(&api_host).map_err(|why| invalid("duo.api_host", why))?;
    let integration_key = raw.integration_key.as_deref().map(str::trim).unwrap_or("").to_string();
    if integration_key.is_empty() || !integration_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid("duo.integration_key", "the integration key (letters and digits) is required"));
    }
    let inline = raw.secret_key.as_deref().filter(|k| !k.is_empty());
    let secret_key = match (inline, optional_path(&raw.secret_key_file)) {
        (Some(_), Some(_)) => {
            return Err(invalid("duo.secret_key_file", "set secret_key or secret_key_file, not both"));
        }
        (Some(key), None) => {
            check_secret_key(key).map_err(|why| invalid("duo.secret_key", why))?;
            SecretKey::Inline(key.to_string())
        }
        (None, Some(path)) => SecretKey::File(path),
        (None, None) => return Err(invalid("duo.secret_key", "secret_key or secret_key_file is required")),
    };
    let failmode = choice(
        "duo.failmode",
        raw.failmode.as_deref(),
        Failmode::Secure,
        &[("secure", Failmode::Secure), ("safe", Failmode::Safe)],
    )?;
    let enroll = choice(
        "duo.enroll",
        raw.enroll.as_deref(),
        Enroll::Reject,
        &[("reject", Enroll::Reject), ("allow", Enroll::Allow)],
    )?;
    // Without a first factor, "accept anyway" would accept anyone.
    if mode == Mode::Otp && failmode == Failmode::Safe {
        return Err(invalid("duo.failmode", "safe accepts on the first factor alone, and mode otp has none"));
    }
    if mode == Mode::Otp && enroll == Enroll::Allow {
        return Err(invalid("duo.enroll", "allow accepts on the first factor alone, and mode otp has none"));
    }
    let approval = choice(
        "duo.approval",
        raw.approval.as_deref(),
        Approval::Wait,
        &[("wait", Approval::Wait), ("challenge", Approval::Challenge)],
    )?;
    let signature_version = signature_version(raw)?;
    // preauth, auth, then polls until `wait`, the last one bounded by `timeout`:
    // every mode but otp can wait on a push or a call (`password,push`,
    // `password,phone`, auto's "password," and its menu); otp checks passcodes alone.
    let waits = mode != Mode::Otp;
    let longest = if waits { raw.wait + 3 * raw.timeout } else { 2 * raw.timeout };
    if let Some(words) = request_time.refuses("a login", longest, "") {
        return Err(invalid(if waits { "duo.wait" } else { "duo.timeout" }, words));
    }
    Ok(DuoConfig {
        api_host,
        integration_key,
        secret_key,
        timeout: Duration::from_secs(u64::from(raw.timeout)),
        failmode,
        enroll,
        wait: Duration::from_secs(u64::from(raw.wait)),
        poll_interval: Duration::from_secs(u64::from(raw.poll_interval)),
        max_waiting: raw.max_waiting as usize,
        approval,
        longest: Duration::from_secs(u64::from(longest)),
        signature_version,
        ca_file: optional_path(&raw.ca_file),
        ca_path: optional_path(&raw.ca_path),
    })
}

/// `duo.signature_version`: Duo takes 5, and 2 where it still does.
pub fn signature_version(raw: &RawDuo) -> Result<u8, ConfigError> {
    match raw.signature_version {
        2 => Ok(2),
        5 => Ok(5),
        other => Err(invalid("duo.signature_version", format!("{other} is not 2 or 5"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stock max_request_time, with the local journal (no store wait).
    const THIRTY: RequestTime = RequestTime { max_request_time: 30, store_wait: Duration::ZERO };

    fn good() -> RawDuo {
        RawDuo {
            api_host: Some("api-12345678.duosecurity.com".into()),
            integration_key: Some("DIWJ8X6AEYOR5OMC6TQ1".into()),
            secret_key: Some("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into()),
            ..RawDuo::default()
        }
    }

    #[test]
    fn defaults_are_valid() {
        let cfg = settings(&good(), Mode::Push, THIRTY).unwrap();
        assert_eq!(cfg.failmode, Failmode::Secure);
        assert_eq!(cfg.enroll, Enroll::Reject);
        assert_eq!(cfg.signature_version, 5);
        assert!(!format!("{cfg:?}").contains("Zh5eG"));
    }

    #[test]
    fn errors_name_the_item() {
        let item = |change: &dyn Fn(&mut RawDuo), mode| {
            let mut raw = good();
            change(&mut raw);
            settings(&raw, mode, THIRTY).unwrap_err().item
        };
        assert_eq!(item(&|_| {}, Mode::PasswordThenOtp), "mode");
        assert_eq!(item(&|r| r.api_host = None, Mode::Otp), "duo.api_host");
        assert_eq!(item(&|r| r.api_host = Some("http://duo.example.com".into()), Mode::Otp), "duo.api_host");
        assert_eq!(item(&|r| r.integration_key = Some("DI x".into()), Mode::Otp), "duo.integration_key");
        assert_eq!(item(&|r| r.secret_key = None, Mode::Otp), "duo.secret_key");
        assert_eq!(item(&|r| r.secret_key_file = Some("/etc/skey".into()), Mode::Otp), "duo.secret_key_file");
        assert_eq!(item(&|r| r.failmode = Some("open".into()), Mode::Push), "duo.failmode");
        assert_eq!(item(&|r| r.failmode = Some("safe".into()), Mode::Otp), "duo.failmode");
        assert_eq!(item(&|r| r.enroll = Some("allow".into()), Mode::Otp), "duo.enroll");
        assert_eq!(item(&|r| r.signature_version = 4, Mode::Otp), "duo.signature_version");
        assert_eq!(item(&|r| r.approval = Some("later".into()), Mode::Push), "duo.approval");
        assert_eq!(item(&|r| r.wait = 20, Mode::Push), "duo.wait");
        // password,push and auto's push or menu wait as mode push does.
        assert_eq!(item(&|r| r.wait = 20, Mode::PasswordOtp), "duo.wait");
        assert_eq!(item(&|r| r.wait = 20, Mode::Auto), "duo.wait");
        assert!(settings(&RawDuo { wait: 20, ..good() }, Mode::Otp, THIRTY).is_ok(), "passcodes alone never wait");
        assert_eq!(item(&|r| r.timeout = 15, Mode::Otp), "duo.timeout");
    }

    /// What the start-up check counts is what a re-send of a login waits at most,
    /// so that it too ends before the server's max_request_time.
    #[test]
    fn the_longest_a_login_takes_is_what_max_request_time_is_checked_against() {
        let (wait, timeout) = (15, 4);
        let raw = RawDuo { wait, timeout, ..good() };
        let push = settings(&raw, Mode::Push, THIRTY).unwrap();
        assert_eq!(push.longest, Duration::from_secs(u64::from(wait + 3 * timeout)));
        assert_eq!(settings(&raw, Mode::Otp, THIRTY).unwrap().longest, Duration::from_secs(8), "2 x timeout");
        let redis = RequestTime { max_request_time: 30, store_wait: Duration::from_millis(1500) };
        assert_eq!(settings(&raw, Mode::Push, redis).unwrap().longest, push.longest);
        let tight = RequestTime { max_request_time: 28, store_wait: Duration::from_millis(1500) };
        assert_eq!(settings(&raw, Mode::Push, tight).unwrap_err().item, "duo.wait", "27 + 1.5 is not under 28");
    }
}

//! The `push { }` section: the push provider(s) and how a login waits for the
//! answer (mode push, push as a menu entry, and `auto`'s push word).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{choice, invalid, optional_path, ConfigError, RequestTime};
use crate::text::url::{has_http_scheme, redact};

crate::section! {
    /// The items of the `push { }` section, before checking.
    pub struct RawPush {
        /// The provider's base URL; without it there is no push. May carry credentials.
        url: Option<String> [secret()],
        /// Tried when the first fails.
        secondary_url: Option<String> [secret()],
        /// The Authorization header's value.
        authorization: Option<String> [secret()],
        timeout: u32 = "5" [range(1, 30, "seconds")],
        skip_failing: u32 = "30",
        poll_interval: u32 = "2" [range(1, 60, "seconds")],
        wait: u32 = "15" [range(5, 600, "seconds")],
        max_waiting: u32 = "8" [range(1, 10_000, "logins")],
        failmode: Option<String> = "secure",
        /// What the device shows: {user}, {client}, {nas}.
        message: String = "Approve login to {client} for {user}?",
        approval: Option<String> = "wait",
        when_busy: Option<String> = "challenge",
        /// CAs (PEM) to verify the provider(s) with, instead of the system's.
        ca_file: Option<String>,
        /// A directory of CA certificates (*.pem, *.crt), instead of the system's.
        ca_path: Option<String>,
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
    pub timeout: Duration,
    /// How long a failing provider is skipped.
    pub skip_failing: Duration,
    pub poll_interval: Duration,
    /// How long a login waits for the answer.
    pub wait: Duration,
    /// Logins waiting at once, at most; more are refused (the server keeps threads for others).
    pub max_waiting: usize,
    pub failmode: Failmode,
    /// What the device shows: {user}, {client}, {nas}.
    pub message: String,
    /// CAs to verify the provider(s) with instead of the system's.
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
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
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .finish()
    }
}

/// Checks the section. A push, with the calls around it and the state store's
/// wait, must end before the server's max_request_time.
pub fn push_settings(p: &RawPush, request_time: RequestTime) -> Result<Push, ConfigError> {
    let urls = urls(p)?;
    if p.url.as_deref().map(str::trim).unwrap_or("").is_empty() {
        return Err(invalid("push.url", "mode push needs the push provider's URL"));
    }
    // The server abandons a request after max_request_time: a wait (plus the calls that
    // create the push and ask for its status) must end before it. Creating the push may
    // try every provider, a timeout each; when that outlasts the wait, the cancel follows.
    let create = urls.len() as u32 * p.timeout;
    let longest = create.max(p.wait + p.timeout) + p.timeout;
    let how = if create > p.wait + p.timeout {
        format!("{} providers x timeout {} to create it, then a cancel", urls.len(), p.timeout)
    } else {
        format!("wait {} + 2 x timeout {}", p.wait, p.timeout)
    };
    if let Some(words) = request_time.refuses("a push", longest, &format!(" ({how})")) {
        return Err(invalid("push.wait", words));
    }
    let (failmode, approval, busy_challenges) = choices(p)?;
    Ok(Push {
        approval,
        busy_challenges,
        urls,
        authorization: p.authorization.clone().filter(|a| !a.is_empty()),
        timeout: Duration::from_secs(u64::from(p.timeout)),
        skip_failing: Duration::from_secs(u64::from(p.skip_failing)),
        poll_interval: Duration::from_secs(u64::from(p.poll_interval)),
        wait: Duration::from_secs(u64::from(p.wait)),
        max_waiting: p.max_waiting as usize,
        failmode,
        message: p.message.clone(),
        ca_file: optional_path(&p.ca_file),
        ca_path: optional_path(&p.ca_path),
    })
}

/// What a section the module does not use (no push provider, or Duo's push) can
/// still get wrong: its URLs and its words stop the start as where it is used.
pub fn check_unused(p: &RawPush) -> Result<(), ConfigError> {
    urls(p)?;
    choices(p).map(|_| ())
}

/// `url` and `secondary_url`, each an http(s) URL, without a trailing slash.
fn urls(p: &RawPush) -> Result<Vec<String>, ConfigError> {
    let mut urls = Vec::new();
    for (item, url) in [("push.url", &p.url), ("push.secondary_url", &p.secondary_url)] {
        let url = url.as_deref().map(str::trim).unwrap_or("");
        if url.is_empty() {
            continue;
        }
        if !has_http_scheme(url) {
            return Err(invalid(item, format!("\"{}\" is not an http:// or https:// URL", redact(url))));
        }
        urls.push(url.trim_end_matches('/').to_string());
    }
    Ok(urls)
}

/// `failmode`, `approval` and `when_busy` (true: challenge).
fn choices(p: &RawPush) -> Result<(Failmode, Approval, bool), ConfigError> {
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
    Ok((failmode, approval, busy_challenges))
}

//! Push approval: the module asks a push provider (an HTTPS API) to send
//! "Approve login to vpn-gw-1 for alice?" to the user's phone, then asks it for
//! the push's status until the user approves or denies, the push expires or the
//! module stops waiting (the waiting itself is the engine's; this module makes
//! the calls).
//!
//! # The generic provider's JSON contract
//!
//! `{base}` is the configured base URL without a trailing `/`; it may have a
//! path (`https://push.example.com/api/v1`) but no query or fragment.
//!
//! - `POST {base}/push` with the body
//!   `{"user": "...", "message": "...", "client": "...", "request_id": "..."}`
//!   answers 200 or 201 with `{"id": "...", "status": "pending"}`.
//!   `request_id` is an idempotency key: a second POST with the same
//!   `request_id` answers the push that already exists (its id, its status as
//!   it is now) instead of sending another. This is how the two RADIUS servers
//!   of a pair, or a retransmitted request, join one push.
//! - `GET {base}/push/{id}` answers 200 with
//!   `{"id": "...", "status": "pending" | "approved" | "denied" | "expired"}`.
//!   The id in the path is percent-encoded (all but `A-Z a-z 0-9 - . _ ~`).
//! - `DELETE {base}/push/{id}` answers 200 or 204: the push is cancelled
//!   (best effort; the module does not rely on it).
//!
//! Every request has `User-Agent: rlm_mfa/<version>`, `Accept:
//! application/json` and, when configured, the `Authorization` header as
//! configured (e.g. `Bearer ...`); the POST has `Content-Type:
//! application/json`. Redirects are not followed.
//!
//! Anything else is an error: another HTTP status, an answer that is not a
//! JSON object with a string `id` and a string `status`, a status word other
//! than the four above (they are compared exactly, lower case), an `id` that is
//! empty or longer than 512 bytes, or a GET whose answer names another id.
//! Other fields of the answers are ignored.
//!
//! Neither the Authorization value nor the base URL's user information or
//! query ever appears in an error, a log line or `Debug`; nor does anything the
//! provider answered, which could echo the credential.
//!
//! [`Failover`] puts several providers (a primary, a secondary) behind one
//! [`PushProvider`].

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::channel::http::{self, Failure};

/// Where a push stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushStatus {
    /// Sent; the user has not answered yet.
    Pending,
    Approved,
    Denied,
    /// The provider gave up on it (or it was cancelled).
    Expired,
}

impl PushStatus {
    /// The word of the contract: "pending", "approved", "denied", "expired".
    pub fn as_str(self) -> &'static str {
        match self {
            PushStatus::Pending => "pending",
            PushStatus::Approved => "approved",
            PushStatus::Denied => "denied",
            PushStatus::Expired => "expired",
        }
    }

    fn from_word(word: &str) -> Option<PushStatus> {
        match word {
            "pending" => Some(PushStatus::Pending),
            "approved" => Some(PushStatus::Approved),
            "denied" => Some(PushStatus::Denied),
            "expired" => Some(PushStatus::Expired),
            _ => None,
        }
    }
}

impl fmt::Display for PushStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call to the provider failed. None of them holds the Authorization
/// value, the URL or what the provider answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushError {
    /// No complete answer within the configured timeout.
    Timeout,
    /// No connection, or the connection failed before a complete answer; the
    /// reason in plain words.
    Unreachable(String),
    /// The provider answered with an HTTP status the contract does not allow.
    Status(u16),
    /// The answer is not what the contract says; what is wrong, in plain words.
    BadAnswer(String),
    /// Every provider of a [`Failover`] was tried for this call and failed.
    AllDown,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Timeout => f.write_str("the push provider did not answer in time"),
            PushError::Unreachable(reason) => {
                write!(f, "cannot reach the push provider: {reason}")
            }
            PushError::Status(code) => write!(f, "the push provider answered HTTP {code}"),
            PushError::BadAnswer(reason) => {
                write!(f, "the push provider's answer is not valid: {reason}")
            }
            PushError::AllDown => f.write_str("every push provider failed"),
        }
    }
}

impl std::error::Error for PushError {}

/// What to send. `request_id` is the idempotency key: the same login asked
/// for twice (by the other server of a pair, or again after a retransmission)
/// gets the same one, and so joins the same push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushRequest<'a> {
    pub user: &'a str,
    /// What the phone shows: "Approve login to vpn-gw-1 for alice?"
    pub message: &'a str,
    /// The RADIUS client (NAS) the login comes through.
    pub client: &'a str,
    pub request_id: &'a str,
}

/// Something that can send a push and tell how it stands.
pub trait PushProvider: Send + Sync {
    /// Sends the push (or joins the one with the same `request_id`); gives its id
    /// and its status, which for a joined push may already be final.
    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError>;
    /// Like [`PushProvider::open`], the id alone.
    fn create(&self, req: &PushRequest<'_>) -> Result<String, PushError> {
        self.open(req).map(|(id, _)| id)
    }
    /// Like [`PushProvider::open`], asking only provider number `index` of a
    /// [`Failover`]: to find a push again where it was made. One provider has no
    /// other to ask.
    fn open_on(&self, index: usize, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        let _ = index;
        self.open(req)
    }
    /// How the push with that id stands.
    fn status(&self, id: &str) -> Result<PushStatus, PushError>;
    /// Withdraws the push (best effort).
    fn cancel(&self, id: &str) -> Result<(), PushError>;
}

/// Where and how to reach one provider.
#[derive(Clone)]
pub struct ProviderConfig {
    /// `http://` or `https://`, with or without a path; no query or fragment.
    pub base_url: String,
    /// The value of the Authorization header, if any. A secret.
    pub authorization: Option<String>,
    /// Bound for one whole call: connect, write and read. Not the DNS lookup,
    /// which ureq cannot interrupt: a host name relies on a responsive resolver.
    pub timeout: Duration,
}

impl ProviderConfig {
    /// The base URL without user information, query or fragment, which may
    /// hold credentials: fit for a log line.
    pub fn redacted_url(&self) -> String {
        http::redact(&self.base_url)
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("base_url", &self.redacted_url())
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The most of an answer that is read; a longer one is refused.
const MAX_ANSWER: usize = 64 * 1024;
/// The longest push id accepted from a provider.
const MAX_ID: usize = 512;

/// A provider that speaks the generic JSON contract over HTTP(S), reusing
/// connections between calls.
pub struct HttpPushProvider {
    cfg: ProviderConfig,
    /// The base URL without trailing slashes.
    base: String,
    agent: ureq::Agent,
}

impl fmt::Debug for HttpPushProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPushProvider").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl HttpPushProvider {
    /// Checks the configuration; the error names what is wrong (and never shows
    /// the URL or the Authorization value).
    pub fn new(cfg: ProviderConfig) -> Result<HttpPushProvider, String> {
        let url = cfg.base_url.as_str();
        if !http::has_http_scheme(url) {
            return Err("base_url must start with http:// or https://".to_owned());
        }
        if url.contains(['?', '#']) {
            return Err("base_url must not have a query or fragment (a credential goes in authorization)".to_owned());
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("base_url holds a space or a control character".to_owned());
        }
        if cfg.timeout.is_zero() {
            return Err("timeout must be more than 0".to_owned());
        }
        http::check_authorization(cfg.authorization.as_deref())?;
        let base = url.trim_end_matches('/').to_owned();
        let agent = http::agent(cfg.timeout);
        if let Some(reason) = http::url_problem(&agent, &format!("{base}/push")) {
            return Err(format!("base_url is not valid: {reason}"));
        }
        Ok(HttpPushProvider { cfg, base, agent })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let mut request = self.agent.request(method, url).set("Accept", "application/json");
        if let Some(auth) = &self.cfg.authorization {
            request = request.set("Authorization", auth);
        }
        request
    }

    fn push_url(&self, id: &str) -> String {
        format!("{}/push/{}", self.base, encode_segment(id))
    }

    /// Sends the request and reads the answer whole, if its status is one of
    /// `expected`.
    fn call(&self, request: ureq::Request, body: Option<&[u8]>, expected: &[u16]) -> Result<Vec<u8>, PushError> {
        http::contain_panic(|| {
            let sent = match body {
                Some(body) => request.set("Content-Type", "application/json").send_bytes(body),
                None => request.call(),
            };
            match sent {
                Ok(response) => read_answer(response, expected),
                Err(ureq::Error::Status(code, _)) => Err(PushError::Status(code)),
                Err(ureq::Error::Transport(t)) => Err(transport_error(&t)),
            }
        })
        .unwrap_or_else(|f| Err(failure(f)))
    }
}

/// The body of an answer whose status is one of `expected`, read whole. Apart
/// from the call (and public) so that the fuzz targets reach it without a network.
pub fn read_answer(response: ureq::Response, expected: &[u16]) -> Result<Vec<u8>, PushError> {
    let code = response.status();
    if !expected.contains(&code) {
        return Err(PushError::Status(code));
    }
    match http::read_body(response, MAX_ANSWER) {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err(PushError::BadAnswer("it is too long".to_owned())),
        Err(f) => Err(failure(f)),
    }
}

impl PushProvider for HttpPushProvider {
    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        let body = serde_json::json!({
            "user": req.user,
            "message": req.message,
            "client": req.client,
            "request_id": req.request_id,
        })
        .to_string();
        let request = self.request("POST", &format!("{}/push", self.base));
        let answer = self.call(request, Some(body.as_bytes()), &[200, 201])?;
        // A joined push may already be answered: any known status will do.
        parse_answer(&answer)
    }

    fn status(&self, id: &str) -> Result<PushStatus, PushError> {
        let request = self.request("GET", &self.push_url(id));
        let answer = self.call(request, None, &[200])?;
        let (answered_id, status) = parse_answer(&answer)?;
        if answered_id != id {
            return Err(PushError::BadAnswer("it is about another push (its id differs)".to_owned()));
        }
        Ok(status)
    }

    fn cancel(&self, id: &str) -> Result<(), PushError> {
        let request = self.request("DELETE", &self.push_url(id));
        self.call(request, None, &[200, 204]).map(|_| ())
    }
}

/// The id and status of an answer. The reasons name what is wrong without
/// quoting the answer, which could echo anything (the credential included).
pub fn parse_answer(answer: &[u8]) -> Result<(String, PushStatus), PushError> {
    let bad = |reason: &str| PushError::BadAnswer(reason.to_owned());
    let value: serde_json::Value = serde_json::from_slice(answer).map_err(|_| bad("it is not JSON"))?;
    let object = value.as_object().ok_or_else(|| bad("it is not a JSON object"))?;
    let id = match object.get("id") {
        None | Some(serde_json::Value::Null) => return Err(bad("it has no id")),
        Some(id) => id.as_str().ok_or_else(|| bad("its id is not a string"))?,
    };
    if id.is_empty() {
        return Err(bad("its id is empty"));
    }
    if id.len() > MAX_ID {
        return Err(bad("its id is too long"));
    }
    let status = match object.get("status") {
        None | Some(serde_json::Value::Null) => return Err(bad("it has no status")),
        Some(status) => status.as_str().ok_or_else(|| bad("its status is not a string"))?,
    };
    let status = PushStatus::from_word(status)
        .ok_or_else(|| bad("its status is not one of pending, approved, denied, expired"))?;
    Ok((id.to_owned(), status))
}

/// Percent-encodes all but the unreserved characters of RFC 3986, so that an
/// id is one path segment whatever it holds.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn transport_error(t: &ureq::Transport) -> PushError {
    failure(http::transport_failure(t))
}

fn failure(f: Failure) -> PushError {
    match f {
        Failure::Timeout => PushError::Timeout,
        Failure::Unreachable(why) => PushError::Unreachable(why),
    }
}

/// Several providers behind one: tries them in order (primary, then
/// secondary).
///
/// A provider that fails (timeout, unreachable, HTTP 5xx, bad answer) is
/// skipped for `skip_for` before it is tried again, so that a dead primary
/// does not cost every login a timeout. If every provider is being skipped,
/// the one whose skip ends first is tried all the same: a call is never
/// refused without trying at least one. Any other answer (a 4xx, say) means
/// that the provider is up: it is returned as is, without trying the next.
///
/// A push id is tied to the provider that created it: [`Failover::create`]
/// gives `"{index}:{provider's id}"` (index 0 for the first provider), and
/// `status` and `cancel` go to that provider, skipped or not. Their failures
/// count for the skipping too, and any answer from a provider ends its skip.
///
/// When `create` fails, the error is [`PushError::AllDown`] if there are
/// several providers and every one was tried for this call and failed;
/// otherwise it is the error of the last provider tried (with one provider, its
/// own error). With no provider at all it is `AllDown`.
pub struct Failover {
    providers: Vec<Box<dyn PushProvider>>,
    skip_for: Duration,
    /// Per provider: skipped until then, if it failed lately.
    skip_until: Mutex<Vec<Option<Instant>>>,
}

impl fmt::Debug for Failover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("providers", &self.providers.len())
            .field("skip_for", &self.skip_for)
            .finish_non_exhaustive()
    }
}

/// Whether an error says that the provider is not working, rather than that it
/// refused this call.
/// Whether the provider failed (unreachable, slow, 5xx, garbage), as opposed to
/// answering a refusal (a 4xx): only failures count for failover and failmode.
pub fn is_failure(e: &PushError) -> bool {
    match e {
        PushError::Timeout | PushError::Unreachable(_) | PushError::BadAnswer(_) | PushError::AllDown => true,
        PushError::Status(code) => (500..600).contains(code),
    }
}

impl Failover {
    pub fn new(providers: Vec<Box<dyn PushProvider>>, skip_for: Duration) -> Failover {
        let skip_until = Mutex::new(vec![None; providers.len()]);
        Failover { providers, skip_for, skip_until }
    }

    fn skips(&self) -> MutexGuard<'_, Vec<Option<Instant>>> {
        // The vector stays consistent whatever panicked while it was held.
        self.skip_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes how a call to provider `index` went.
    fn note<T>(&self, index: usize, result: &Result<T, PushError>) {
        let until = match result {
            Err(e) if is_failure(e) => Instant::now().checked_add(self.skip_for),
            _ => None,
        };
        if let Some(slot) = self.skips().get_mut(index) {
            *slot = until;
        }
    }

    /// The providers to try now, in order.
    fn candidates(&self) -> Vec<usize> {
        let now = Instant::now();
        let skips = self.skips();
        let ready: Vec<usize> = (0..skips.len()).filter(|&i| skips[i].is_none_or(|until| until <= now)).collect();
        if !ready.is_empty() {
            return ready;
        }
        // All skipped: the one whose skip ends first (the first of equals).
        (0..skips.len()).min_by_key(|&i| skips[i]).into_iter().collect()
    }

    /// The provider of an id made by `create`, and its own id.
    fn route<'a>(&self, id: &'a str) -> Result<(usize, &'a str), PushError> {
        let unknown = || PushError::BadAnswer("the push id was not made by this module".to_owned());
        let (index, inner) = id.split_once(':').ok_or_else(unknown)?;
        let i: usize = index.parse().map_err(|_| unknown())?;
        if i.to_string() != index || i >= self.providers.len() {
            return Err(unknown());
        }
        Ok((i, inner))
    }
}

/// The provider (0: the primary) that made a push id of [`Failover`]; 0 for another id.
pub fn provider_of(id: &str) -> usize {
    id.split_once(':').and_then(|(index, _)| index.parse().ok()).unwrap_or(0)
}

impl PushProvider for Failover {
    fn open_on(&self, index: usize, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        let Some(provider) = self.providers.get(index) else {
            return self.open(req);
        };
        let result = provider.open(req);
        self.note(index, &result);
        result.map(|(id, status)| (format!("{index}:{id}"), status))
    }

    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        let candidates = self.candidates();
        let mut last = PushError::AllDown;
        for &i in &candidates {
            let result = self.providers[i].open(req);
            self.note(i, &result);
            match result {
                Ok((id, status)) => return Ok((format!("{i}:{id}"), status)),
                Err(e) if is_failure(&e) => last = e,
                Err(e) => return Err(e),
            }
        }
        if candidates.len() > 1 && candidates.len() == self.providers.len() {
            Err(PushError::AllDown)
        } else {
            Err(last)
        }
    }

    fn status(&self, id: &str) -> Result<PushStatus, PushError> {
        let (i, inner) = self.route(id)?;
        let result = self.providers[i].status(inner);
        self.note(i, &result);
        result
    }

    fn cancel(&self, id: &str) -> Result<(), PushError> {
        let (i, inner) = self.route(id)?;
        let result = self.providers[i].cancel(inner);
        self.note(i, &result);
        result
    }
}

// The fake provider of the integration tests, so that both test the same
// server. Here rather than inside `tests`: there #[path] would be resolved from
// the directory src/push/tests/, which does not exist.
#[cfg(test)]
#[path = "../../../../tests/common/fake_push.rs"]
mod fake_push;

#[cfg(test)]
mod tests {
    use super::fake_push::{FakePush, PushBehaviour};
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::sync::Arc;

    const AUTH: &str = "Bearer s3cr3t-t0ken";
    const LONG: Duration = Duration::from_secs(60);

    fn config(url: &str, timeout_ms: u64) -> ProviderConfig {
        ProviderConfig {
            base_url: url.to_owned(),
            authorization: Some(AUTH.to_owned()),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn provider(url: &str, timeout_ms: u64) -> HttpPushProvider {
        HttpPushProvider::new(config(url, timeout_ms)).unwrap()
    }

    fn request(request_id: &str) -> PushRequest<'_> {
        PushRequest { user: "alice", message: "Approve login to vpn-gw-1 for alice?", client: "vpn-gw-1", request_id }
    }

    /// Asserts that an error shows nothing of the credential.
    fn assert_clean(e: &PushError) {
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("s3cr3t") && !text.contains("Bearer"), "{text}");
        }
    }

    /// A port on which nothing listens.
    fn dead_url() -> String {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        format!("http://127.0.0.1:{port}")
    }

    /// Polls until the status is no longer pending, at most `limit`.
    fn wait_answer(p: &dyn PushProvider, id: &str, limit: Duration) -> (PushStatus, usize) {
        let deadline = Instant::now() + limit;
        let mut polls = 0;
        loop {
            let status = p.status(id).unwrap();
            polls += 1;
            if status != PushStatus::Pending || Instant::now() >= deadline {
                return (status, polls);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn create_then_poll_until_approved() {
        let fake = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_millis(400)));
        let p = provider(&fake.url(), 5000);
        let started = Instant::now();
        let id = p.create(&request("r1")).unwrap();
        assert_eq!(id, "push-1");
        let (status, polls) = wait_answer(&p, &id, Duration::from_secs(5));
        assert_eq!(status, PushStatus::Approved);
        assert!(polls > 1, "approved at the first poll");
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(fake.created(), 1);
        assert_eq!(fake.calls(), 1 + polls);

        let body = fake.last_create_body().unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "user": "alice",
                "message": "Approve login to vpn-gw-1 for alice?",
                "client": "vpn-gw-1",
                "request_id": "r1",
            })
        );
        let requests = fake.requests();
        let post = &requests[0];
        assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/push"));
        assert_eq!(post.header("Authorization"), Some(AUTH));
        assert_eq!(post.header("Content-Type"), Some("application/json"));
        assert_eq!(post.header("User-Agent"), Some(concat!("rlm_mfa/", env!("CARGO_PKG_VERSION"))));
        let get = &requests[1];
        assert_eq!((get.method.as_str(), get.path.as_str()), ("GET", "/push/push-1"));
        assert_eq!(get.header("Authorization"), Some(AUTH));
        assert_eq!(get.header("Accept"), Some("application/json"));
    }

    #[test]
    fn deny_and_never_answer() {
        let fake = FakePush::start(PushBehaviour::DenyAfter(Duration::from_millis(100)));
        let p = provider(&fake.url(), 5000);
        let id = p.create(&request("r1")).unwrap();
        let (status, _) = wait_answer(&p, &id, Duration::from_secs(5));
        assert_eq!(status, PushStatus::Denied);

        fake.set_behaviour(PushBehaviour::NeverAnswer);
        let id = p.create(&request("r2")).unwrap();
        let (status, polls) = wait_answer(&p, &id, Duration::from_millis(300));
        assert_eq!(status, PushStatus::Pending);
        assert!(polls >= 2);
        // Answered later, as the fake decides when asked.
        fake.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
        assert_eq!(p.status(&id), Ok(PushStatus::Approved));
        assert_eq!(fake.created(), 2);
    }

    #[test]
    fn base_url_with_a_path_and_trailing_slash() {
        let fake = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
        let p = provider(&format!("{}/api/v1//", fake.url()), 5000);
        let id = p.create(&request("r1")).unwrap();
        assert_eq!(p.status(&id), Ok(PushStatus::Approved));
        let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/api/v1/push", "/api/v1/push/push-1"]);
    }

    #[test]
    fn idempotent_create_returns_the_same_id() {
        let fake = FakePush::start(PushBehaviour::NeverAnswer);
        let a = provider(&fake.url(), 5000);
        let b = provider(&fake.url(), 5000);
        let id = a.create(&request("same")).unwrap();
        assert_eq!(b.create(&request("same")).unwrap(), id);
        assert_eq!(fake.created(), 1);
        assert_eq!(fake.calls(), 2);
        // The join of an answered push works too.
        fake.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
        assert_eq!(a.create(&request("same")).unwrap(), id);
        let other = a.create(&request("other")).unwrap();
        assert_ne!(other, id);
        assert_eq!(fake.created(), 2);
    }

    #[test]
    fn cancel() {
        let fake = FakePush::start(PushBehaviour::NeverAnswer);
        let p = provider(&fake.url(), 5000);
        let id = p.create(&request("r1")).unwrap();
        p.cancel(&id).unwrap();
        assert_eq!(fake.cancelled(), 1);
        assert_eq!(p.status(&id), Ok(PushStatus::Expired));
        let last = fake.requests().pop().unwrap();
        assert_eq!(last.method, "GET");
        assert_eq!(fake.requests()[1].method, "DELETE");
        assert_eq!(fake.requests()[1].path, "/push/push-1");
        assert_eq!(p.cancel("nope"), Err(PushError::Status(404)));
        assert_eq!(p.status("nope"), Err(PushError::Status(404)));
        assert_eq!(fake.cancelled(), 1);
    }

    #[test]
    fn error_500_is_status_500() {
        let fake = FakePush::start(PushBehaviour::Error500);
        let p = provider(&fake.url(), 5000);
        let e = p.create(&request("r1")).unwrap_err();
        assert_eq!(e, PushError::Status(500));
        assert_eq!(e.to_string(), "the push provider answered HTTP 500");
        assert_eq!(p.status("push-1"), Err(PushError::Status(500)));
        assert_eq!(p.cancel("push-1"), Err(PushError::Status(500)));
        assert_eq!(fake.calls(), 3);
        assert_eq!(fake.created(), 0);
    }

    #[test]
    fn malformed_is_a_bad_answer() {
        let fake = FakePush::start(PushBehaviour::Malformed);
        let p = provider(&fake.url(), 5000);
        let e = p.create(&request("r1")).unwrap_err();
        assert_eq!(e, PushError::BadAnswer("it is not JSON".to_owned()));
        assert_eq!(e.to_string(), "the push provider's answer is not valid: it is not JSON");
        assert!(matches!(p.status("push-1"), Err(PushError::BadAnswer(_))));
        // Cancel reads no JSON: a 200 is enough.
        assert_eq!(p.cancel("push-1"), Ok(()));
    }

    #[test]
    fn close_is_unreachable() {
        let fake = FakePush::start(PushBehaviour::Close);
        let started = Instant::now();
        let e = provider(&fake.url(), 5000).create(&request("r1")).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "it waited for the timeout");
        assert!(matches!(&e, PushError::Unreachable(r) if r.contains("closed")), "{e:?}");
        assert_clean(&e);
        assert_eq!(fake.calls(), 1);
    }

    #[test]
    fn hang_times_out_within_the_timeout() {
        let fake = FakePush::start(PushBehaviour::Hang);
        let p = provider(&fake.url(), 1000);
        for call in 0..2 {
            let started = Instant::now();
            let e = match call {
                0 => p.create(&request("r1")).unwrap_err(),
                _ => p.status("push-1").unwrap_err(),
            };
            let took = started.elapsed();
            assert_eq!(e, PushError::Timeout);
            assert!(took >= Duration::from_millis(900), "gave up after {took:?}");
            assert!(took < Duration::from_secs(2), "took {took:?}");
        }
        assert_eq!(fake.calls(), 2);
        assert_eq!(PushError::Timeout.to_string(), "the push provider did not answer in time");
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        let e = provider(&dead_url(), 2000).create(&request("r1")).unwrap_err();
        assert_eq!(e, PushError::Unreachable("connection refused".to_owned()));
        assert_eq!(e.to_string(), "cannot reach the push provider: connection refused");
    }

    /// A one-connection server that reads the request, writes `answer` as is,
    /// then closes. Gives the base URL and the request line it received.
    fn raw_server(answer: &[u8]) -> (String, mpsc::Receiver<String>) {
        // Owned by the thread, so that no answer is leaked to make it 'static.
        let answer = answer.to_vec();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if first.is_empty() {
                    first = line.trim_end().to_owned();
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(first);
            let _ = stream.write_all(&answer);
        });
        (url, rx)
    }

    fn answered(body: &str) -> Vec<u8> {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes()
    }

    fn status_answer(body: &str) -> Result<PushStatus, PushError> {
        let (url, _) = raw_server(&answered(body));
        provider(&url, 2000).status("p1")
    }

    fn create_answer(body: &str) -> Result<String, PushError> {
        let (url, _) = raw_server(&answered(body));
        provider(&url, 2000).create(&request("r1"))
    }

    #[test]
    fn a_header_line_without_colon_is_a_failure() {
        // Found by fuzzing (fuzz/regressions/push_answer/): ureq 2.12.1 panics on it.
        let (url, _) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length\r\n\r\n{}");
        let e = provider(&url, 2000).status("p1").unwrap_err();
        assert_eq!(e, PushError::Unreachable("its answer is not valid HTTP".into()));
        assert!(is_failure(&e), "counts for failover and failmode");
    }

    #[test]
    fn answers_outside_the_contract_are_bad() {
        fn bad<T>(reason: &str) -> Result<T, PushError> {
            Err(PushError::BadAnswer(reason.to_owned()))
        }
        assert_eq!(
            status_answer(r#"{"id":"p1","status":"maybe"}"#),
            bad("its status is not one of pending, approved, denied, expired")
        );
        assert_eq!(
            status_answer(r#"{"id":"p1","status":"Approved"}"#),
            bad("its status is not one of pending, approved, denied, expired")
        );
        assert_eq!(status_answer(r#"{"id":"p1"}"#), bad("it has no status"));
        assert_eq!(status_answer(r#"{"id":"p1","status":true}"#), bad("its status is not a string"));
        assert_eq!(status_answer(r#"{"status":"approved"}"#), bad("it has no id"));
        assert_eq!(status_answer(r#"{"id":7,"status":"approved"}"#), bad("its id is not a string"));
        assert_eq!(
            status_answer(r#"{"id":"p2","status":"approved"}"#),
            bad("it is about another push (its id differs)")
        );
        assert_eq!(status_answer(r#"["p1","approved"]"#), bad("it is not a JSON object"));
        assert_eq!(status_answer(""), bad("it is not JSON"));
        assert_eq!(status_answer(r#"{"id":"p1","status":"approved","extra":{"x":1}}"#), Ok(PushStatus::Approved));

        assert_eq!(create_answer(r#"{"status":"pending"}"#), bad("it has no id"));
        assert_eq!(create_answer(r#"{"id":"","status":"pending"}"#), bad("its id is empty"));
        let long = format!(r#"{{"id":"{}","status":"pending"}}"#, "x".repeat(MAX_ID + 1));
        assert_eq!(create_answer(&long), bad("its id is too long"));
        let huge = format!(r#"{{"id":"p1","status":"pending","pad":"{}"}}"#, "x".repeat(MAX_ANSWER));
        assert_eq!(create_answer(&huge), bad("it is too long"));
        assert_eq!(create_answer(r#"{"id":"p1","status":"approved"}"#), Ok("p1".to_owned()));
        // An answer that echoes the credential is not quoted.
        let e = create_answer(r#"{"id":"p1","status":"Bearer s3cr3t-t0ken"}"#).unwrap_err();
        assert_clean(&e);
    }

    #[test]
    fn other_statuses_are_errors() {
        let (url, _) = raw_server(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(provider(&url, 2000).create(&request("r1")), Err(PushError::Status(202)));
        let (url, _) = raw_server(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(provider(&url, 2000).status("p1"), Err(PushError::Status(302)));
        let (url, _) = raw_server(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        assert_eq!(provider(&url, 2000).cancel("p1"), Ok(()));
        let (url, _) = raw_server(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(provider(&url, 2000).cancel("p1"), Err(PushError::Status(401)));
        let (url, _) = raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        let e = provider(&url, 2000).status("p1").unwrap_err();
        assert!(matches!(&e, PushError::Unreachable(r) if r.contains("not valid HTTP")), "{e:?}");
    }

    #[test]
    fn the_id_is_one_encoded_path_segment() {
        let (url, line) = raw_server(&answered(r#"{"id":"a/b c?d%","status":"pending"}"#));
        assert_eq!(provider(&url, 2000).status("a/b c?d%"), Ok(PushStatus::Pending));
        assert_eq!(line.recv().unwrap(), "GET /push/a%2Fb%20c%3Fd%25 HTTP/1.1");
        let (url, line) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        provider(&url, 2000).cancel("Ab-9._~").unwrap();
        assert_eq!(line.recv().unwrap(), "DELETE /push/Ab-9._~ HTTP/1.1");
    }

    #[test]
    fn tls_to_a_plain_server_fails_cleanly() {
        let (url, _) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let url = url.replace("http://", "https://");
        let e = provider(&url, 2000).create(&request("r1")).unwrap_err();
        assert!(matches!(&e, PushError::Unreachable(r) if r.starts_with("TLS failed")), "{e:?}");
        assert_clean(&e);
    }

    #[test]
    fn no_authorization_header_when_none() {
        let fake = FakePush::start(PushBehaviour::NeverAnswer);
        let mut cfg = config(&fake.url(), 5000);
        cfg.authorization = None;
        let p = HttpPushProvider::new(cfg).unwrap();
        let id = p.create(&request("r1")).unwrap();
        p.status(&id).unwrap();
        assert!(fake.requests().iter().all(|r| r.header("Authorization").is_none()));
    }

    #[test]
    fn debug_hides_the_authorization_and_url_credentials() {
        let cfg = config("https://user:pw@push.example.com/api?key=K3Y#f", 5000);
        let text = format!("{cfg:?}");
        assert!(!text.contains("s3cr3t") && !text.contains("Bearer"), "{text}");
        assert!(!text.contains("K3Y") && !text.contains("pw@"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(text.contains("https://push.example.com/api"), "{text}");

        let p = provider("https://push.example.com/api", 5000);
        let text = format!("{p:?}");
        assert!(!text.contains("s3cr3t") && text.contains("<redacted>"), "{text}");
        let failover = Failover::new(vec![Box::new(p)], LONG);
        let text = format!("{failover:?}");
        assert!(!text.contains("s3cr3t"), "{text}");

        let mut cfg = config("https://push.example.com", 5000);
        cfg.authorization = None;
        assert!(format!("{cfg:?}").contains("authorization: None"));
    }

    #[test]
    fn redacted_url_cases() {
        let r = |url: &str| config(url, 1000).redacted_url();
        assert_eq!(r("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(r("https://h/api/v1"), "https://h/api/v1");
        assert_eq!(r("http://h/p?q=1"), "http://h/p (credentials and query left out)");
        assert_eq!(r("http://a:b@c@h/p"), "http://h/p (credentials and query left out)");
        assert_eq!(r("http://h#x"), "http://h (credentials and query left out)");
        assert_eq!(r("ø://ü@é/ä?ö"), "ø://é/ä (credentials and query left out)");
        assert_eq!(r(""), "");
    }

    #[test]
    fn errors_never_hold_the_authorization() {
        let mut errors = Vec::new();
        for b in [PushBehaviour::Error500, PushBehaviour::Malformed, PushBehaviour::Close] {
            let fake = FakePush::start(b);
            let p = provider(&fake.url(), 2000);
            errors.push(p.create(&request("r1")).unwrap_err());
            errors.push(p.status("push-1").unwrap_err());
        }
        let fake = FakePush::start(PushBehaviour::Hang);
        errors.push(provider(&fake.url(), 300).create(&request("r1")).unwrap_err());
        errors.push(provider(&dead_url(), 2000).status("x").unwrap_err());
        let failover =
            Failover::new(vec![Box::new(provider(&dead_url(), 2000)), Box::new(provider(&dead_url(), 2000))], LONG);
        errors.push(failover.create(&request("r1")).unwrap_err());
        errors.push(failover.status("bad").unwrap_err());
        assert_eq!(errors.len(), 10);
        for e in &errors {
            assert_clean(e);
        }
    }

    #[test]
    fn new_refuses_bad_configurations() {
        let err = |cfg: ProviderConfig| HttpPushProvider::new(cfg).unwrap_err();
        let scheme = "base_url must start with http:// or https://";
        assert_eq!(err(config("ftp://h", 1000)), scheme);
        assert_eq!(err(config("h/api", 1000)), scheme);
        assert_eq!(err(config("", 1000)), scheme);
        let e = err(config("https://h/api?key=K3Y", 1000));
        assert!(e.contains("query") && !e.contains("K3Y"), "{e}");
        assert!(err(config("https://h/#x", 1000)).contains("fragment"));
        assert!(err(config("https://h/a b", 1000)).contains("space"));
        let e = err(config("http://h:99999/x", 1000));
        assert!(e.starts_with("base_url is not valid: "), "{e}");
        assert_eq!(err(config("http://[::1/x", 1000)), "base_url is not valid: invalid IPv6 address");
        assert_eq!(err(config("http://h", 0)), "timeout must be more than 0");

        let mut cfg = config("http://h", 1000);
        cfg.authorization = Some("Bearer a\r\nX-Injected: 1".to_owned());
        let e = err(cfg.clone());
        assert!(e.contains("control character") && !e.contains("Bearer"), "{e}");
        cfg.authorization = Some(" ".to_owned());
        assert!(err(cfg).contains("empty"));

        HttpPushProvider::new(config("HTTPS://push.example.com/api/", 1000)).unwrap();
        HttpPushProvider::new(config("http://127.0.0.1:8080", 1000)).unwrap();
    }

    #[test]
    fn error_display() {
        assert_eq!(PushError::Status(404).to_string(), "the push provider answered HTTP 404");
        assert_eq!(PushError::Unreachable("x".into()).to_string(), "cannot reach the push provider: x");
        assert_eq!(PushError::BadAnswer("y".into()).to_string(), "the push provider's answer is not valid: y");
        assert_eq!(PushError::AllDown.to_string(), "every push provider failed");
        assert_eq!(PushStatus::Approved.to_string(), "approved");
        assert_eq!(PushStatus::Pending.as_str(), "pending");
    }

    fn failover(urls: &[&str], skip_for: Duration) -> Failover {
        let providers: Vec<Box<dyn PushProvider>> =
            urls.iter().map(|u| Box::new(provider(u, 2000)) as Box<dyn PushProvider>).collect();
        Failover::new(providers, skip_for)
    }

    #[test]
    fn failover_primary_not_listening_uses_the_secondary() {
        let secondary = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
        let f = failover(&[&dead_url(), &secondary.url()], LONG);
        let id = f.create(&request("r1")).unwrap();
        assert_eq!(id, "1:push-1");
        assert_eq!(f.status(&id), Ok(PushStatus::Approved));
        f.cancel(&id).unwrap();
        assert_eq!(secondary.created(), 1);
        assert_eq!(secondary.cancelled(), 1);
    }

    #[test]
    fn failover_open_on_finds_a_push_where_it_was_made() {
        let primary = FakePush::start(PushBehaviour::Error500);
        let secondary = FakePush::start(PushBehaviour::NeverAnswer);
        let f = failover(&[&primary.url(), &secondary.url()], Duration::ZERO);
        let (id, _) = f.open(&request("r1")).unwrap();
        assert_eq!((id.as_str(), provider_of(&id)), ("1:push-1", 1));
        // The primary works again (and is no longer skipped): open would make a
        // second push there; open_on asks the secondary alone.
        primary.set_behaviour(PushBehaviour::NeverAnswer);
        let calls = primary.calls();
        assert_eq!(f.open_on(1, &request("r1")).unwrap(), ("1:push-1".to_owned(), PushStatus::Pending));
        assert_eq!((primary.calls(), secondary.created()), (calls, 1));
        // An index it does not have: the usual order.
        assert_eq!(f.open_on(7, &request("r2")).unwrap().0, "0:push-1");
        assert_eq!(provider_of("push-9"), 0);
    }

    #[test]
    fn failover_skips_a_failing_primary_for_skip_for() {
        let primary = FakePush::start(PushBehaviour::Error500);
        let secondary = FakePush::start(PushBehaviour::NeverAnswer);
        let f = failover(&[&primary.url(), &secondary.url()], LONG);
        assert_eq!(f.create(&request("r1")).unwrap(), "1:push-1");
        assert_eq!(primary.calls(), 1);
        // Within skip_for the primary is not asked, even once it works again.
        primary.set_behaviour(PushBehaviour::NeverAnswer);
        for n in 2..=4 {
            assert_eq!(f.create(&request(&format!("r{n}"))).unwrap(), format!("1:push-{n}"));
        }
        assert_eq!(primary.calls(), 1);
        assert_eq!(secondary.created(), 4);
    }

    #[test]
    fn failover_tries_the_primary_again_after_skip_for() {
        let primary = FakePush::start(PushBehaviour::Error500);
        let secondary = FakePush::start(PushBehaviour::NeverAnswer);
        let skip_for = Duration::from_millis(200);
        let f = failover(&[&primary.url(), &secondary.url()], skip_for);
        assert_eq!(f.create(&request("r1")).unwrap(), "1:push-1");
        std::thread::sleep(skip_for + Duration::from_millis(50));
        // Tried again, still failing: skipped again.
        assert_eq!(f.create(&request("r2")).unwrap(), "1:push-2");
        assert_eq!(primary.calls(), 2);
        std::thread::sleep(skip_for + Duration::from_millis(50));
        primary.set_behaviour(PushBehaviour::NeverAnswer);
        assert_eq!(f.create(&request("r3")).unwrap(), "0:push-1");
        assert_eq!(f.create(&request("r4")).unwrap(), "0:push-2");
        assert_eq!(primary.calls(), 4);
        assert_eq!(secondary.created(), 2);
    }

    #[test]
    fn failover_ids_route_to_the_provider_that_made_them() {
        let primary = FakePush::start(PushBehaviour::Error500);
        let secondary = FakePush::start(PushBehaviour::NeverAnswer);
        let f = failover(&[&primary.url(), &secondary.url()], Duration::from_millis(100));
        let on_secondary = f.create(&request("r1")).unwrap();
        assert_eq!(on_secondary, "1:push-1");
        std::thread::sleep(Duration::from_millis(150));
        primary.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
        let on_primary = f.create(&request("r2")).unwrap();
        // Both providers call their push "push-1": only the prefix tells them apart.
        assert_eq!(on_primary, "0:push-1");

        let (p_calls, s_calls) = (primary.calls(), secondary.calls());
        assert_eq!(f.status(&on_secondary), Ok(PushStatus::Pending));
        assert_eq!((primary.calls(), secondary.calls()), (p_calls, s_calls + 1));
        assert_eq!(f.status(&on_primary), Ok(PushStatus::Approved));
        assert_eq!((primary.calls(), secondary.calls()), (p_calls + 1, s_calls + 1));
        f.cancel(&on_secondary).unwrap();
        assert_eq!((primary.cancelled(), secondary.cancelled()), (0, 1));

        // Ids it did not make reach no provider.
        for id in ["push-1", "2:push-1", "x:push-1", "01:push-1", "+1:push-1", ":push-1", ""] {
            assert!(matches!(f.status(id), Err(PushError::BadAnswer(_))), "{id}");
            assert!(matches!(f.cancel(id), Err(PushError::BadAnswer(_))), "{id}");
        }
        assert_eq!((primary.calls(), secondary.calls()), (p_calls + 1, s_calls + 2));
    }

    #[test]
    fn failover_status_goes_to_a_skipped_provider_and_failures_count() {
        let primary = FakePush::start(PushBehaviour::NeverAnswer);
        let secondary = FakePush::start(PushBehaviour::NeverAnswer);
        let f = failover(&[&primary.url(), &secondary.url()], LONG);
        let id = f.create(&request("r1")).unwrap();
        assert_eq!(id, "0:push-1");
        primary.set_behaviour(PushBehaviour::Error500);
        assert_eq!(f.status(&id), Err(PushError::Status(500)));
        // The failed status call makes new pushes go to the secondary...
        assert_eq!(f.create(&request("r2")).unwrap(), "1:push-1");
        assert_eq!(primary.calls(), 2);
        // ...while the push on the primary is still asked there.
        primary.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
        assert_eq!(f.status(&id), Ok(PushStatus::Approved));
        // And an answer ends the primary's skip.
        assert_eq!(f.create(&request("r3")).unwrap(), "0:push-2");
    }

    #[test]
    fn failover_client_errors_do_not_fail_over() {
        let primary = FakePush::start(PushBehaviour::NeverAnswer);
        let secondary = FakePush::start(PushBehaviour::NeverAnswer);
        let f = failover(&[&primary.url(), &secondary.url()], LONG);
        assert_eq!(f.status("0:unknown"), Err(PushError::Status(404)));
        assert_eq!(f.create(&request("r1")).unwrap(), "0:push-1");
        assert_eq!(secondary.calls(), 0);
    }

    #[test]
    fn failover_both_down() {
        let primary = FakePush::start(PushBehaviour::Error500);
        let secondary = FakePush::start(PushBehaviour::Close);
        let f = failover(&[&primary.url(), &secondary.url()], LONG);
        assert_eq!(f.create(&request("r1")), Err(PushError::AllDown));
        assert_eq!((primary.calls(), secondary.calls()), (1, 1));
        // Both skipped: the one whose skip ends first is tried all the same.
        assert_eq!(f.create(&request("r2")), Err(PushError::Status(500)));
        assert_eq!((primary.calls(), secondary.calls()), (2, 1));
        let e = f.create(&request("r3")).unwrap_err();
        assert!(matches!(e, PushError::Unreachable(_)), "{e:?}");
        assert_eq!((primary.calls(), secondary.calls()), (2, 2));
        // The one tried works again: used at once.
        primary.set_behaviour(PushBehaviour::NeverAnswer);
        assert_eq!(f.create(&request("r4")).unwrap(), "0:push-1");
        assert_eq!((primary.calls(), secondary.calls()), (3, 2));
    }

    #[test]
    fn failover_both_not_listening() {
        let f = failover(&[&dead_url(), &dead_url()], LONG);
        assert_eq!(f.create(&request("r1")), Err(PushError::AllDown));
        assert!(matches!(f.create(&request("r1")), Err(PushError::Unreachable(_))));
    }

    #[test]
    fn failover_of_one_or_none() {
        let fake = FakePush::start(PushBehaviour::Error500);
        let f = failover(&[&fake.url()], LONG);
        assert_eq!(f.create(&request("r1")), Err(PushError::Status(500)));
        assert_eq!(f.create(&request("r1")), Err(PushError::Status(500)));
        assert_eq!(fake.calls(), 2, "a lone provider is always tried");
        let none = Failover::new(Vec::new(), LONG);
        assert_eq!(none.create(&request("r1")), Err(PushError::AllDown));
        assert!(matches!(none.status("0:x"), Err(PushError::BadAnswer(_))));
    }

    #[test]
    fn failover_is_shareable_between_threads() {
        let primary = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
        let secondary = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
        let f: Arc<dyn PushProvider> = Arc::new(failover(&[&primary.url(), &secondary.url()], LONG));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || {
                    let id = f.create(&request(&format!("r{i}"))).unwrap();
                    f.status(&id).unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), PushStatus::Approved);
        }
        assert_eq!((primary.created(), secondary.created()), (4, 0));
    }

    #[test]
    fn fake_answers_a_hand_written_request() {
        let fake = FakePush::start(PushBehaviour::NeverAnswer);
        let mut s = TcpStream::connect(fake.addr()).unwrap();
        s.write_all(b"POST /push HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n{\"a\":1}").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
        assert_eq!(fake.created(), 0);
        assert_eq!(fake.calls(), 1);
        assert_eq!(fake.last_create_body(), None);
    }
}

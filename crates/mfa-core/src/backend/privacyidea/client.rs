//! The HTTP side of the privacyIDEA backend: `/validate/check` and
//! `/validate/polltransaction` on a list of servers tried in order, a failing
//! one skipped for a while, each call bounded by one deadline (connect, send and
//! read together), TLS verified against the system's or a given CA, and
//! connections kept for the next request unless told otherwise.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::answer::{self, AnswerError, CheckAnswer, PollStatus};
use crate::channel::http::{self, Failure};

/// Answers longer than this are not read: privacyIDEA's are a few KiB.
const MAX_ANSWER: usize = 256 * 1024;
/// Idle connections kept per server: enough for every FreeRADIUS thread of a
/// large thread pool to find one.
const IDLE_PER_SERVER: usize = 64;
/// Debian's bundle of the system's trusted CAs, used when no CA is configured.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How to reach privacyIDEA.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URLs (`https://pi.example.com`), tried in order.
    pub urls: Vec<String>,
    /// Bound on one HTTP call, from connect to the last byte.
    pub timeout: Duration,
    /// How long a server that failed is passed over.
    pub skip_failing: Duration,
    /// The header and the value that carry an API key; a secret.
    pub api_key: Option<(String, String)>,
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    /// Keep connections open for the next request.
    pub reuse_connections: bool,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("urls", &self.urls.iter().map(|u| http::redact(u)).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("api_key", &self.api_key.as_ref().map(|(h, _)| (h, "<redacted>")))
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .field("reuse_connections", &self.reuse_connections)
            .finish()
    }
}

/// Why a call got no answer to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No server gave a usable answer; the reasons, one per server tried.
    Unavailable(String),
    /// A server answered, and the answer says no or cannot be used.
    Answer(AnswerError),
}

/// A call's result, and the servers that failed on the way (for the log).
pub struct Called<T> {
    pub result: Result<T, CallError>,
    /// One line per server that failed before one answered.
    pub failed: Vec<String>,
}

impl<T> From<Result<T, CallError>> for Called<T> {
    fn from(result: Result<T, CallError>) -> Self {
        Called { result, failed: vec![] }
    }
}

/// The calls the engine makes; a fake stands in for it in unit tests.
pub trait Validate: Send + Sync {
    /// `POST /validate/check` with these form fields.
    fn check(&self, form: &[(&str, &str)]) -> Called<CheckAnswer>;
    /// `GET /validate/polltransaction?transaction_id=...`.
    fn poll(&self, transaction_id: &str) -> Called<PollStatus>;
}

struct Server {
    base: String,
    failing_until: Mutex<Option<Instant>>,
}

pub struct HttpClient {
    servers: Vec<Server>,
    agent: ureq::Agent,
    api_key: Option<(String, String)>,
    skip_failing: Duration,
}

/// One server's failure: worth trying the next one.
struct ServerFailure(String);

impl HttpClient {
    /// The error starts with the item it is about (`url`, `ca_file`, ...).
    pub fn new(cfg: &ClientConfig) -> Result<HttpClient, String> {
        if cfg.urls.is_empty() {
            return Err("url is required with backend = privacyidea".into());
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(cfg.timeout)
            .timeout(cfg.timeout)
            .redirects(0)
            // privacyIDEA reads name/version for its statistics; say who asks.
            .user_agent(concat!("rlm_mfa/", env!("CARGO_PKG_VERSION")));
        // ureq keeps one idle connection per host unless told otherwise: with several
        // FreeRADIUS threads calling at once, all but one would connect anew each time.
        let idle = if cfg.reuse_connections { IDLE_PER_SERVER } else { 0 };
        builder = builder.max_idle_connections(idle * cfg.urls.len()).max_idle_connections_per_host(idle);
        if let Some(tls) = tls_config(cfg)? {
            builder = builder.tls_config(tls);
        }
        let agent = builder.build();
        let mut servers = Vec::new();
        for url in &cfg.urls {
            if !http::has_http_scheme(url) {
                return Err(format!("url \"{}\" does not start with http:// or https://", http::redact(url)));
            }
            if let Some(why) = http::url_problem(&agent, url) {
                return Err(format!("url \"{}\": {why}", http::redact(url)));
            }
            servers.push(Server { base: url.trim_end_matches('/').to_string(), failing_until: Mutex::new(None) });
        }
        if let Some((header, value)) = &cfg.api_key {
            if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err("api_key_header is not a header name".into());
            }
            http::check_authorization(Some(value)).map_err(|e| e.replace("authorization", "api_key"))?;
        }
        Ok(HttpClient { servers, agent, api_key: cfg.api_key.clone(), skip_failing: cfg.skip_failing })
    }

    /// Runs `call` on each server in order, skipping those that failed lately
    /// (unless all did); the first answer ends it.
    fn on_servers<T>(&self, call: impl Fn(&str) -> Result<Result<T, AnswerError>, ServerFailure>) -> Called<T> {
        let now = Instant::now();
        let healthy = |s: &&Server| lock(&s.failing_until).is_none_or(|until| until <= now);
        let mut order: Vec<&Server> = self.servers.iter().filter(healthy).collect();
        if order.is_empty() {
            order = self.servers.iter().collect();
        }
        let mut reasons = Vec::new();
        for server in order {
            match call(&server.base) {
                Ok(answer) => {
                    *lock(&server.failing_until) = None;
                    return Called { result: answer.map_err(CallError::Answer), failed: reasons };
                }
                Err(ServerFailure(why)) => {
                    *lock(&server.failing_until) = Some(Instant::now() + self.skip_failing);
                    reasons.push(format!("{}: {why}", http::redact(&server.base)));
                }
            }
        }
        Called { result: Err(CallError::Unavailable(reasons.join("; "))), failed: vec![] }
    }

    fn with_key(&self, request: ureq::Request) -> ureq::Request {
        match &self.api_key {
            Some((header, value)) => request.set(header, value),
            None => request,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The answer's body, or why the server counts as failing. Error statuses
/// (4xx) carry privacyIDEA's JSON error and are answers; 5xx are failures.
fn body_of(result: Result<ureq::Response, ureq::Error>) -> Result<Vec<u8>, ServerFailure> {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) if code >= 500 => {
            return Err(ServerFailure(format!("HTTP status {code}")));
        }
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Err(ServerFailure(failure_words(http::transport_failure(&t)))),
    };
    match http::read_body(response, MAX_ANSWER) {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err(ServerFailure(format!("the answer is longer than {MAX_ANSWER} bytes"))),
        Err(failure) => Err(ServerFailure(failure_words(failure))),
    }
}

fn failure_words(f: Failure) -> String {
    match f {
        Failure::Timeout => "no answer in time".into(),
        Failure::Unreachable(why) => why,
    }
}

/// A body that is not JSON at all is the server failing (a proxy's error page);
/// any JSON is its answer.
fn parsed<T>(body: &[u8], parse: fn(&[u8]) -> Result<T, AnswerError>) -> Result<Result<T, AnswerError>, ServerFailure> {
    match parse(body) {
        Err(AnswerError::NotJson) => Err(ServerFailure("its answer is not JSON".into())),
        other => Ok(other),
    }
}

/// The whole exchange under `http::contain_panic`: ureq 2.12 panics on some
/// malformed answers (a header line without a colon); that is the server failing.
fn exchange(call: impl FnOnce() -> Result<Vec<u8>, ServerFailure>) -> Result<Vec<u8>, ServerFailure> {
    http::contain_panic(call).unwrap_or_else(|f| Err(ServerFailure(failure_words(f))))
}

impl Validate for HttpClient {
    fn check(&self, form: &[(&str, &str)]) -> Called<CheckAnswer> {
        self.on_servers(|base| {
            let request = self.with_key(self.agent.post(&format!("{base}/validate/check")));
            parsed(&exchange(|| body_of(request.send_form(form)))?, answer::parse_check)
        })
    }

    fn poll(&self, transaction_id: &str) -> Called<PollStatus> {
        self.on_servers(|base| {
            let request = self
                .with_key(self.agent.get(&format!("{base}/validate/polltransaction")))
                .query("transaction_id", transaction_id);
            parsed(&exchange(|| body_of(request.call()))?, answer::parse_poll)
        })
    }
}

/// The TLS settings: the CA file or directory if given, else the system's
/// bundle if there is one, else the client's built-in roots. Verification is
/// always on: a self-signed server is trusted by naming its certificate in ca_file.
fn tls_config(cfg: &ClientConfig) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut files: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(file) = &cfg.ca_file {
        files.push((file.clone(), "ca_file"));
    }
    if let Some(dir) = &cfg.ca_path {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("ca_path {}: {e}", dir.display()))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pem" || x == "crt"))
            .collect();
        found.sort();
        files.extend(found.into_iter().map(|p| (p, "ca_path")));
    }
    let configured = !files.is_empty();
    if !configured {
        if !std::path::Path::new(SYSTEM_CA_BUNDLE).exists() {
            return Ok(None);
        }
        files.push((PathBuf::from(SYSTEM_CA_BUNDLE), "ca_file"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (path, item) in &files {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("{item} {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{item} {}: {e}", path.display()))?;
            // The system bundle may hold a certificate rustls cannot use; skip it there only.
            if let Err(e) = roots.add(cert) {
                if configured {
                    return Err(format!("{item} {}: {e}", path.display()));
                }
            }
        }
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", if configured { "ca_file/ca_path" } else { SYSTEM_CA_BUNDLE }));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("ca_file: TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// An HTTP answer with the right Content-Length.
    fn http(status: &str, body: &str) -> Vec<u8> {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    }

    /// A server that answers every request on a connection with `answer`, as bytes.
    fn raw_server(answer: impl Into<Vec<u8>>) -> String {
        let answer: Vec<u8> = answer.into();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // Headers up to the blank line; the form body is small and ignored.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let mut stream = stream;
                let _ = stream.write_all(&answer);
            }
        });
        url
    }

    fn client(urls: Vec<String>) -> HttpClient {
        HttpClient::new(&ClientConfig {
            urls,
            timeout: Duration::from_secs(2),
            skip_failing: Duration::from_secs(30),
            api_key: None,
            ca_file: None,
            ca_path: None,
            reuse_connections: false,
        })
        .unwrap()
    }

    #[test]
    fn a_header_line_without_colon_is_the_server_failing() {
        // ureq 2.12 panics on this answer; it must be a failure, not a panic.
        let url = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length\r\n\r\n{}".as_slice());
        let called = client(vec![url]).check(&[("user", "alice"), ("pass", "x")]);
        match called.result {
            Err(CallError::Unavailable(why)) => assert!(why.contains("not valid HTTP"), "{why}"),
            other => panic!("{:?}", other.map(|a| a.verdict)),
        }
    }

    #[test]
    fn a_failing_server_is_passed_over_and_noted() {
        let bad = raw_server(http("502 Bad Gateway", ""));
        let good = raw_server(http("200 OK", r#"{"result":{"status":true,"value":true,"authentication":"A"}}"#));
        let c = client(vec![bad, good]);
        let called = c.check(&[("user", "alice"), ("pass", "x")]);
        assert_eq!(called.failed.len(), 1, "the failing server is noted: {:?}", called.failed);
        assert!(called.failed[0].contains("502"));
        // "A" is not an authentication privacyIDEA gives: an answer, but not usable.
        assert!(matches!(called.result, Err(CallError::Answer(AnswerError::Malformed(_)))));
        // Skipped now: the next call goes straight to the good server.
        assert!(c.check(&[("user", "alice"), ("pass", "x")]).failed.is_empty());
    }

    #[test]
    fn four_hundreds_with_json_are_answers_and_pages_are_failures() {
        let refused = raw_server(http(
            "400 BAD REQUEST",
            r#"{"result":{"status":false,"error":{"code":904,"message":"ERR904"}}}"#,
        ));
        let called = client(vec![refused]).check(&[("user", "nobody"), ("pass", "x")]);
        assert!(matches!(called.result, Err(CallError::Answer(AnswerError::Refused { code: 904, .. }))));
        let page = raw_server(http("200 OK", "<html>"));
        assert!(matches!(client(vec![page]).check(&[]).result, Err(CallError::Unavailable(_))));
    }
}

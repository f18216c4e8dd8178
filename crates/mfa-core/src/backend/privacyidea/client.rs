//! The HTTP side of the privacyIDEA backend: `/validate/check` and
//! `/validate/polltransaction` on a list of servers tried in order, a failing
//! one skipped for a while (`channel::failover`), each call bounded by one
//! deadline (name lookup, connect, send and read together), TLS verified
//! against the given CAs or else the system's, and connections kept for the
//! next request unless told otherwise.

use super::answer::{self, AnswerError, CheckAnswer, PollStatus};
use crate::channel::failover::{Health, WhenAllSkipped};
use crate::channel::http::{self, Failure, Pool, Response};
use crate::channel::setup::SetupError;
use crate::channel::tls;

/// Answers longer than this are not read: privacyIDEA's are a few KiB.
const MAX_ANSWER: usize = 256 * 1024;

// What the client is built from is the configuration layer's.
pub use crate::config::privacyidea::ClientConfig;

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
    /// The base URL as requests are sent to it, without trailing slashes.
    base: String,
    /// The base URL as configured, fit for a log line.
    shown: String,
}

pub struct HttpClient {
    servers: Vec<Server>,
    /// Which servers are passed over; when all are, all are asked again.
    health: Health,
    agent: ureq::Agent,
    api_key: Option<(String, String)>,
}

/// One server's failure: worth trying the next one.
struct ServerFailure(String);

impl HttpClient {
    /// Checks the configuration; the error's field is the item it is about
    /// (`url`, `ca_file`, `ca_path`, `api_key`, `api_key_header`).
    pub fn new(cfg: &ClientConfig) -> Result<HttpClient, SetupError> {
        if cfg.urls.is_empty() {
            return Err(SetupError::new("url", "url is required with backend = privacyidea"));
        }
        let mut servers = Vec::new();
        for url in &cfg.urls {
            let refused = |why: String| SetupError::new("url", format!("url \"{}\"{why}", http::redact(url)));
            if !http::has_http_scheme(url) {
                return Err(refused(" does not start with http:// or https://".into()));
            }
            let configured = url.trim_end_matches('/');
            let base = http::normalize(configured).map_err(|why| refused(format!(": {why}")))?;
            servers.push(Server { base: base.trim_end_matches('/').to_owned(), shown: http::redact(configured) });
        }
        if let Some((header, value)) = &cfg.api_key {
            if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(SetupError::new("api_key_header", "api_key_header is not a header name"));
            }
            http::check_authorization(Some(value))
                .map_err(|e| SetupError::new("api_key", e.replace("authorization", "api_key")))?;
        }
        let roots = tls::roots(
            cfg.ca_file.as_deref(),
            cfg.ca_path.as_deref(),
            servers.iter().map(|s| s.base.as_str()),
            "ca_file",
            "ca_file is not set, and ",
        )?;
        let agent = http::agent(cfg.timeout, roots, Pool::new(servers.len(), cfg.reuse_connections));
        let health = Health::new(servers.len(), cfg.skip_failing, WhenAllSkipped::All);
        Ok(HttpClient { servers, health, agent, api_key: cfg.api_key.clone() })
    }

    /// Runs `call` on each server in order, skipping those that failed lately
    /// (unless all did); the first answer ends it.
    fn on_servers<T>(&self, call: impl Fn(&str) -> Result<Result<T, AnswerError>, ServerFailure>) -> Called<T> {
        let asked = self.health.first_answer(|i| call(&self.servers[i].base));
        let reasons: Vec<String> = asked
            .failures
            .into_iter()
            .map(|(i, ServerFailure(why))| format!("{}: {why}", self.servers[i].shown))
            .collect();
        match asked.answer {
            Some((_, answer)) => Called { result: answer.map_err(CallError::Answer), failed: reasons },
            None => Called { result: Err(CallError::Unavailable(reasons.join("; "))), failed: vec![] },
        }
    }

    fn with_key<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.api_key {
            Some((header, value)) => request.header(header, value),
            None => request,
        }
    }
}

/// The answer's body, or why the server counts as failing. Error statuses
/// (4xx) carry privacyIDEA's JSON error and are answers; 5xx are failures.
fn body_of(sent: Result<Response, ureq::Error>) -> Result<Vec<u8>, ServerFailure> {
    let response = sent.map_err(|e| ServerFailure(failure_words(http::failure(&e))))?;
    let code = response.status().as_u16();
    if code >= 500 {
        return Err(ServerFailure(format!("HTTP status {code}")));
    }
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

impl Validate for HttpClient {
    fn check(&self, form: &[(&str, &str)]) -> Called<CheckAnswer> {
        self.on_servers(|base| {
            let request = self.with_key(self.agent.post(format!("{base}/validate/check")));
            parsed(&body_of(request.send_form(form.iter().copied()))?, answer::parse_check)
        })
    }

    fn poll(&self, transaction_id: &str) -> Called<PollStatus> {
        self.on_servers(|base| {
            let request = self
                .with_key(self.agent.get(format!("{base}/validate/polltransaction")))
                .query("transaction_id", transaction_id);
            parsed(&body_of(request.call())?, answer::parse_poll)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::time::Duration;

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

    fn settings(urls: &[&str]) -> ClientConfig {
        ClientConfig {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            timeout: Duration::from_secs(2),
            skip_failing: Duration::from_secs(30),
            api_key: None,
            ca_file: None,
            ca_path: None,
            reuse_connections: true,
        }
    }

    /// The field and the message of the error `cfg` is refused with.
    fn refused(cfg: &ClientConfig) -> (&'static str, String) {
        let e = HttpClient::new(cfg).err().expect("refused");
        (e.field, e.message)
    }

    #[test]
    fn refusals_name_their_item_as_data() {
        assert_eq!(refused(&settings(&[])), ("url", "url is required with backend = privacyidea".into()));
        let (field, message) = refused(&settings(&["http://pi", "ftp://u:pw@pi/x"]));
        assert_eq!(
            (field, message.as_str()),
            ("url", "url \"ftp://pi/x (credentials and query left out)\" does not start with http:// or https://")
        );
        assert_eq!(refused(&settings(&["http://pi:99999/"])).1, "url \"http://pi:99999/\": invalid port number");

        let mut cfg = settings(&["https://pi"]);
        cfg.api_key = Some(("X Key".into(), "s3cr3t".into()));
        assert_eq!(refused(&cfg), ("api_key_header", "api_key_header is not a header name".into()));
        cfg.api_key = Some(("X-Key".into(), "s3cr3t\r\nX: 1".into()));
        let (field, message) = refused(&cfg);
        assert_eq!(field, "api_key");
        assert!(message.starts_with("api_key holds") && !message.contains("s3cr3t"), "{message}");

        let dir = std::env::temp_dir().join(format!("rlm_mfa-pi-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cfg = settings(&["https://pi"]);
        cfg.ca_file = Some(dir.join("missing.pem"));
        assert_eq!(refused(&cfg).0, "ca_file");
        // A CA directory without a certificate is refused, not replaced by the system's.
        cfg.ca_file = None;
        cfg.ca_path = Some(dir.clone());
        assert_eq!(refused(&cfg), ("ca_path", "ca_file/ca_path holds no certificate".into()));
        std::fs::remove_dir_all(&dir).unwrap();
        // The system's store, here.
        HttpClient::new(&settings(&["https://pi", "HTTP://pi2/"])).unwrap();
    }

    #[test]
    fn without_a_system_store_https_needs_ca_file() {
        crate::testutil::run_without_trust_store("backend::privacyidea::client::tests::in_a_process_without_store");
    }

    #[test]
    #[ignore = "run by without_a_system_store_https_needs_ca_file, in a process with no trust store"]
    fn in_a_process_without_store() {
        if !crate::testutil::without_trust_store() {
            return; // run by the test above, in a process of its own
        }
        let (field, message) = refused(&settings(&["http://pi", "https://pi2"]));
        assert_eq!(field, "ca_file");
        assert!(
            message.starts_with("ca_file is not set, and the system's trust store cannot be loaded: "),
            "{message}"
        );
        // Plain HTTP needs no store.
        HttpClient::new(&settings(&["http://pi", "http://pi2"])).unwrap();
    }

    #[test]
    fn a_header_line_without_colon_is_the_server_failing() {
        // ureq 2.12 panicked on this answer; it must be a failure, not a panic.
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

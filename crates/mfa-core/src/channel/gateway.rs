//! Sending a code by SMS or e-mail through an HTTP gateway: one POST per
//! message, its body built from the configured template, as JSON or as
//! form fields (`application/x-www-form-urlencoded`, the shape most SMS APIs take).
//!
//! The message holds the code and the Authorization header holds the gateway's
//! credential, so neither ever appears in an error, a log line or `Debug`.
//! Nor does the URL as configured: its query may carry an API key.
//!
//! A send is bounded as a whole (name lookup, connect, write, read) by the
//! configured timeout: FreeRADIUS is waiting on it, and a gateway that accepts
//! the connection but never answers must not hold a server thread.

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use crate::channel::http::{self, Failure, Pool, Response};
use crate::channel::setup::SetupError;
use crate::channel::tls;
pub use crate::config::BodyFormat;
use crate::text::template;

/// Where and how to send.
#[derive(Clone)]
pub struct GatewayConfig {
    /// `http://` or `https://`.
    pub url: String,
    /// The value of the Authorization header, if any. A secret.
    pub authorization: Option<String>,
    /// JSON with `{destination}`, `{message}` and `{user}` placeholders, written
    /// inside strings: `{"to": "{destination}", "text": "{message}"}`; or form
    /// fields, `To={destination}&Body={message}`, as `body_format` says.
    pub body_template: String,
    pub body_format: BodyFormat,
    /// Bound for one whole send, from the name lookup to the answer's last byte.
    pub timeout: Duration,
    /// CAs to verify the gateway with instead of the system's (PEM file, directory).
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
}

impl GatewayConfig {
    /// The URL without user information and without query or fragment, which
    /// may hold credentials: fit for a log line.
    pub fn redacted_url(&self) -> String {
        http::redact(&self.url)
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("url", &self.redacted_url())
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("body_template", &self.body_template)
            .field("body_format", &self.body_format)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .finish()
    }
}

/// How a [`BodyFormat`] (a setting of the configuration layer) is sent.
impl BodyFormat {
    fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Form => "application/x-www-form-urlencoded",
        }
    }

    fn render(self, template: &str, values: &[(&str, &str)]) -> Result<String, String> {
        match self {
            BodyFormat::Json => template::render_json(template, values),
            BodyFormat::Form => template::render_form(template, values),
        }
    }
}

/// Something that can deliver a message (SMS, e-mail).
pub trait Sender: Send + Sync {
    /// Sends `message` to `destination`. `message` holds the code: it must never
    /// appear in an error or log.
    fn send(&self, user: &str, destination: &str, message: &str) -> Result<(), SendError>;

    /// As `send`, given also the values `message` was rendered from ({code},
    /// {correlation}, {user}), for a sender that renders more (an e-mail's subject).
    fn send_rendered(
        &self,
        user: &str,
        destination: &str,
        message: &str,
        _values: &[(&str, &str)],
    ) -> Result<(), SendError> {
        self.send(user, destination, message)
    }
}

/// Why a message was not sent. None of them holds the message, the request
/// body or the Authorization value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// No complete answer within the configured timeout.
    Timeout,
    /// No connection, or the connection failed before a complete answer; the
    /// reason in plain words.
    Unreachable(String),
    /// The gateway answered with a status other than 2xx.
    Status(u16),
    /// The request body could not be built from the template.
    Template(String),
    /// The mail server refused a step: which, and its reply code (never its text,
    /// which may quote what it was sent).
    Refused(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Timeout => f.write_str("the gateway did not answer in time"),
            SendError::Unreachable(reason) => write!(f, "cannot reach the gateway: {reason}"),
            SendError::Status(code) => write!(f, "the gateway answered HTTP {code}"),
            SendError::Template(reason) => {
                write!(f, "cannot build the request to the gateway: {reason}")
            }
            SendError::Refused(what) => write!(f, "the mail server refused {what}"),
        }
    }
}

impl std::error::Error for SendError {}

/// What is read of a successful answer: enough to see it complete (and to let
/// the connection be reused), not so much that a gateway can make us buffer.
const MAX_ANSWER: u64 = 64 * 1024;

/// Values the template is checked with; they start with a letter that is no
/// JSON escape, so that a placeholder after a backslash is caught too.
const CHECK_DESTINATION: &str = "x-check-destination";
const CHECK_MESSAGE: &str = "x-check-message";
const CHECK_USER: &str = "x-check-user";

/// Sends through an HTTP gateway, reusing connections between sends.
pub struct HttpGateway {
    cfg: GatewayConfig,
    /// The URL as requests are sent to it.
    url: String,
    agent: ureq::Agent,
}

impl fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpGateway").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl HttpGateway {
    /// Checks the configuration; the error names what is wrong (and never shows
    /// the URL's query or the Authorization value).
    pub fn new(cfg: GatewayConfig) -> Result<HttpGateway, SetupError> {
        if !http::has_http_scheme(&cfg.url) {
            return Err(SetupError::new("url", "url must start with http:// or https://"));
        }
        if cfg.timeout.is_zero() {
            return Err(SetupError::new("timeout", "timeout must be more than 0"));
        }
        http::check_authorization(cfg.authorization.as_deref()).map_err(|e| SetupError::new("authorization", e))?;
        let check = [("destination", CHECK_DESTINATION), ("message", CHECK_MESSAGE), ("user", CHECK_USER)];
        let body = cfg
            .body_format
            .render(&cfg.body_template, &check)
            .map_err(|e| SetupError::new("body_template", format!("body_template: {e}")))?;
        for (name, value) in &check[..2] {
            if !body.contains(value) {
                return Err(SetupError::new("body_template", format!("body_template has no {{{name}}} placeholder")));
            }
        }

        let url =
            http::normalize(&cfg.url).map_err(|why| SetupError::new("url", format!("url is not valid: {why}")))?;
        let roots = tls::roots(cfg.ca_file.as_deref(), cfg.ca_path.as_deref(), [url.as_str()], "url", "url: ")?;
        let agent = http::agent(cfg.timeout, roots, Pool::new(1, true));
        Ok(HttpGateway { cfg, url, agent })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }
}

impl Sender for HttpGateway {
    fn send(&self, user: &str, destination: &str, message: &str) -> Result<(), SendError> {
        let values = [("destination", destination), ("message", message), ("user", user)];
        let body = self.cfg.body_format.render(&self.cfg.body_template, &values).map_err(SendError::Template)?;
        let mut request = self.agent.post(&self.url).header("Content-Type", self.cfg.body_format.content_type());
        if let Some(auth) = &self.cfg.authorization {
            request = request.header("Authorization", auth);
        }
        match request.send(body.as_bytes()) {
            Ok(response) => judge_answer(response),
            Err(e) => Err(failure(http::failure(&e))),
        }
    }
}

/// Whether the gateway's answer says sent: a 2xx, read to its end. Apart from
/// `send` (and public) so that the fuzz targets reach it without a network.
pub fn judge_answer(response: Response) -> Result<(), SendError> {
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(SendError::Status(status));
    }
    // A 2xx whose answer breaks off is not trusted: read it to its end.
    let mut answer = response.into_body().into_reader().take(MAX_ANSWER);
    match io::copy(&mut answer, &mut io::sink()) {
        Ok(_) => Ok(()),
        Err(e) => Err(failure(http::io_failure(&e))),
    }
}

fn failure(f: Failure) -> SendError {
    match f {
        Failure::Timeout => SendError::Timeout,
        Failure::Unreachable(why) => SendError::Unreachable(why),
    }
}

#[cfg(test)]
#[path = "../../../../tests/common/fake_gateway.rs"]
mod fake_gateway;

#[cfg(test)]
mod tests {
    use super::fake_gateway::{Behaviour, FakeGateway};
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    const TEMPLATE: &str = r#"{"to": "{destination}", "text": "{message}", "ref": "{user}"}"#;
    const AUTH: &str = "Bearer s3cr3t-t0ken";
    const MESSAGE: &str = "Your code is 493817";
    const CODE: &str = "493817";

    fn config(url: &str, timeout_ms: u64) -> GatewayConfig {
        GatewayConfig {
            url: url.to_owned(),
            authorization: Some(AUTH.to_owned()),
            body_template: TEMPLATE.to_owned(),
            body_format: BodyFormat::Json,
            timeout: Duration::from_millis(timeout_ms),
            ca_file: None,
            ca_path: None,
        }
    }

    fn gateway(url: &str, timeout_ms: u64) -> HttpGateway {
        HttpGateway::new(config(url, timeout_ms)).unwrap()
    }

    /// Asserts that an error shows neither the code nor the credential.
    fn assert_clean(e: &SendError) {
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(CODE) && !text.contains("Your code"), "{text}");
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn accept_sends_the_rendered_body_with_headers() {
        let fake = FakeGateway::start(Behaviour::Accept);
        let gw = gateway(&fake.url(), 5000);
        gw.send("alice \"A\"", "+4512345612", MESSAGE).unwrap();
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/send");
        assert_eq!(r.header("authorization"), Some(AUTH));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("User-Agent"), Some(concat!("rlm_mfa/", env!("CARGO_PKG_VERSION"))));
        assert_eq!(r.body, r#"{"to": "+4512345612", "text": "Your code is 493817", "ref": "alice \"A\""}"#);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["ref"], "alice \"A\"");
    }

    #[test]
    fn form_bodies_are_sent_as_form_fields() {
        let fake = FakeGateway::start(Behaviour::Accept);
        let mut cfg = config(&fake.url(), 5000);
        cfg.body_format = BodyFormat::Form;
        cfg.body_template = "To={destination}&From=%2B4500000000&Body={message}".to_owned();
        cfg.authorization = Some("Basic QUMxMjM6dG9rZW4=".to_owned());
        HttpGateway::new(cfg.clone()).unwrap().send("alice", "+4512345612", MESSAGE).unwrap();
        let r = &fake.requests()[0];
        assert_eq!(r.header("Content-Type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(r.body, "To=%2B4512345612&From=%2B4500000000&Body=Your%20code%20is%20493817");
        assert_eq!(r.form("Body").as_deref(), Some(MESSAGE));
        assert_eq!(r.form("To").as_deref(), Some("+4512345612"));
        assert_eq!(r.basic_auth(), Some(("AC123".to_owned(), "token".to_owned())));

        cfg.body_template = "To={destination}".to_owned();
        assert_eq!(HttpGateway::new(cfg.clone()).unwrap_err().message, "body_template has no {message} placeholder");
        cfg.body_template = r#"{"to": "{destination}", "text": "{message}"}"#.to_owned();
        let e = HttpGateway::new(cfg).unwrap_err();
        assert_eq!(e.field, "body_template");
        assert!(e.message.contains("form body"), "{}", e.message);
    }

    #[test]
    fn no_authorization_header_when_none() {
        let fake = FakeGateway::start(Behaviour::Accept);
        let mut cfg = config(&fake.url(), 5000);
        cfg.authorization = None;
        HttpGateway::new(cfg).unwrap().send("bob", "bob@example.com", MESSAGE).unwrap();
        assert_eq!(fake.requests()[0].header("Authorization"), None);
    }

    #[test]
    fn several_sends_on_one_agent() {
        let fake = FakeGateway::start(Behaviour::Accept);
        let gw = gateway(&fake.url(), 5000);
        for i in 0..5 {
            gw.send(&format!("u{i}"), "+4512345612", MESSAGE).unwrap();
        }
        fake.set_behaviour(Behaviour::Fail);
        assert_eq!(gw.send("u", "+4512345612", MESSAGE), Err(SendError::Status(500)));
        fake.set_behaviour(Behaviour::Accept);
        gw.send("u", "+4512345612", MESSAGE).unwrap();
        assert_eq!(fake.requests().len(), 7);
    }

    #[test]
    fn fail_is_status_500() {
        let fake = FakeGateway::start(Behaviour::Fail);
        let e = gateway(&fake.url(), 5000).send("alice", "+4512345612", MESSAGE).unwrap_err();
        assert_eq!(e, SendError::Status(500));
        assert_eq!(e.to_string(), "the gateway answered HTTP 500");
        assert_clean(&e);
        assert_eq!(fake.requests().len(), 1);
    }

    #[test]
    fn hang_times_out_within_the_timeout() {
        let fake = FakeGateway::start(Behaviour::Hang);
        let gw = gateway(&fake.url(), 1000);
        let started = Instant::now();
        let e = gw.send("alice", "+4512345612", MESSAGE).unwrap_err();
        let took = started.elapsed();
        assert_eq!(e, SendError::Timeout);
        assert!(took >= Duration::from_millis(900), "gave up after {took:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert_eq!(e.to_string(), "the gateway did not answer in time");
        assert_eq!(fake.requests().len(), 1, "the request was received before the hang");
    }

    #[test]
    fn hanging_connection_does_not_block_others() {
        let fake = FakeGateway::start(Behaviour::Hang);
        let hanging = gateway(&fake.url(), 3000);
        let blocked = std::thread::spawn(move || hanging.send("a", "1", MESSAGE));
        // Let the first request arrive and hang before changing behaviour.
        let deadline = Instant::now() + Duration::from_secs(2);
        while fake.requests().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        fake.set_behaviour(Behaviour::Accept);
        let started = Instant::now();
        gateway(&fake.url(), 3000).send("b", "2", MESSAGE).unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(blocked.join().unwrap(), Err(SendError::Timeout));
    }

    #[test]
    fn close_without_answer_is_an_error() {
        let fake = FakeGateway::start(Behaviour::Close);
        let started = Instant::now();
        let e = gateway(&fake.url(), 5000).send("alice", "+4512345612", MESSAGE).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "it waited for the timeout");
        assert!(matches!(&e, SendError::Unreachable(r) if r.contains("closed")), "{e:?}");
        assert_clean(&e);
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e =
            gateway(&format!("http://127.0.0.1:{port}/send"), 2000).send("alice", "+4512345612", MESSAGE).unwrap_err();
        assert_eq!(e, SendError::Unreachable("connection refused".to_owned()));
        assert_eq!(e.to_string(), "cannot reach the gateway: connection refused");
    }

    #[test]
    fn connect_that_never_completes_times_out() {
        // A listener that never accepts: once its queue is full, the kernel
        // drops new SYNs and a connect waits. ureq's own connect bound is 30 s.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..4096 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => queued.push(s),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let e = gateway(&format!("http://{addr}/send"), 1000).send("a", "1", MESSAGE).unwrap_err();
        let took = started.elapsed();
        assert_eq!(e, SendError::Timeout, "after {} queued connections", queued.len());
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn fake_drop_stops_listening() {
        let fake = FakeGateway::start(Behaviour::Accept);
        let url = fake.url();
        drop(fake);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match gateway(&url, 1000).send("a", "1", MESSAGE) {
                Err(SendError::Unreachable(_)) => break,
                other => assert!(Instant::now() < deadline, "still answering: {other:?}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A one-connection server that reads the request, writes `answer` as is,
    /// then closes, or keeps the connection open for `hold`.
    fn raw_server(answer: &'static [u8], hold: Option<Duration>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(answer);
            if let Some(hold) = hold {
                std::thread::sleep(hold);
            }
        });
        url
    }

    #[test]
    fn other_2xx_is_sent() {
        let url = raw_server(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", None);
        gateway(&url, 2000).send("a", "1", MESSAGE).unwrap();
        let url = raw_server(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok", None);
        gateway(&url, 2000).send("a", "1", MESSAGE).unwrap();
    }

    #[test]
    fn redirect_is_not_followed() {
        let url = raw_server(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n",
            None,
        );
        assert_eq!(gateway(&url, 2000).send("a", "1", MESSAGE), Err(SendError::Status(302)));
    }

    #[test]
    fn answer_cut_short_is_an_error() {
        let url = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"status\":", None);
        let e = gateway(&url, 2000).send("a", "1", MESSAGE).unwrap_err();
        assert!(matches!(&e, SendError::Unreachable(r) if r.contains("closed")), "{e:?}");
        let url = raw_server(b"HTTP/1.1 200 O", None);
        assert!(matches!(gateway(&url, 2000).send("a", "1", MESSAGE), Err(SendError::Unreachable(_))));
    }

    #[test]
    fn answer_stalling_after_the_headers_times_out() {
        let url = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", Some(Duration::from_secs(5)));
        let started = Instant::now();
        assert_eq!(gateway(&url, 800).send("a", "1", MESSAGE), Err(SendError::Timeout));
        assert!(started.elapsed() < Duration::from_millis(1800));
    }

    #[test]
    fn a_header_line_without_colon_is_not_http() {
        // Found by fuzzing (fuzz/regressions/gateway_answer/): ureq 2.12.1 panicked on it.
        let url = raw_server(b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding\r\n\r\n", None);
        let e = gateway(&url, 2000).send("a", "1", MESSAGE).unwrap_err();
        assert_eq!(e, SendError::Unreachable("its answer is not valid HTTP".into()));
    }

    #[test]
    fn garbage_answer_is_not_http() {
        let url = raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", None);
        let e = gateway(&url, 2000).send("a", "1", MESSAGE).unwrap_err();
        assert!(matches!(&e, SendError::Unreachable(r) if r.contains("not valid HTTP")), "{e:?}");
    }

    #[test]
    fn tls_to_a_plain_server_fails_cleanly() {
        let url = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", None).replace("http://", "https://");
        let e = gateway(&url, 2000).send("a", "1", MESSAGE).unwrap_err();
        assert!(matches!(&e, SendError::Unreachable(r) if r.starts_with("TLS failed")), "{e:?}");
        assert_clean(&e);
    }

    #[test]
    fn config_debug_hides_credentials() {
        let mut cfg = config("https://user:pw@sms.example.com/api/send?key=K3Y#x", 5000);
        let text = format!("{cfg:?}");
        assert!(!text.contains("s3cr3t") && !text.contains("Bearer"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("K3Y") && !text.contains("pw@"), "{text}");
        assert!(text.contains("https://sms.example.com/api/send"), "{text}");
        cfg.url = "https://sms.example.com/api/send".to_owned();
        let gw = HttpGateway::new(cfg).unwrap();
        let text = format!("{gw:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(gw.config().redacted_url(), "https://sms.example.com/api/send");
    }

    #[test]
    fn redacted_url_cases() {
        let r = |url: &str| config(url, 1000).redacted_url();
        assert_eq!(r("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(r("http://h/p?q=1"), "http://h/p (credentials and query left out)");
        assert_eq!(r("http://a@b@h/p"), "http://h/p (credentials and query left out)");
        assert_eq!(r("http://h?x"), "http://h (credentials and query left out)");
        assert_eq!(r("ø://ü/é?ä"), "ø://ü/é (credentials and query left out)");
        assert_eq!(r(""), "");
    }

    #[test]
    fn new_refuses_bad_configurations() {
        let err = |cfg: GatewayConfig| HttpGateway::new(cfg).unwrap_err().message;
        assert_eq!(err(config("ftp://h/x", 1000)), "url must start with http:// or https://");
        assert_eq!(err(config("h/x", 1000)), "url must start with http:// or https://");
        assert_eq!(err(config("", 1000)), "url must start with http:// or https://");
        let e = err(config("http://h:99999/x?key=K3Y", 1000));
        assert!(e.starts_with("url is not valid: ") && !e.contains("K3Y"), "{e}");
        assert_eq!(err(config("http://[::1/x", 1000)), "url is not valid: invalid IPv6 address");
        assert_eq!(err(config("http://h/x", 0)), "timeout must be more than 0");

        let mut cfg = config("http://h/x", 1000);
        cfg.authorization = Some("Bearer a\r\nX-Injected: 1".to_owned());
        let e = err(cfg.clone());
        assert!(e.contains("control character") && !e.contains("Bearer"), "{e}");
        cfg.authorization = Some(" ".to_owned());
        assert!(err(cfg).contains("empty"));

        let mut cfg = config("http://h/x", 1000);
        cfg.body_template = r#"{"to": {destination}, "text": "{message}"}"#.to_owned();
        assert!(err(cfg.clone()).starts_with("body_template: the template does not give valid JSON"));
        cfg.body_template = r#"{"to": "{destination}"}"#.to_owned();
        assert_eq!(err(cfg.clone()), "body_template has no {message} placeholder");
        cfg.body_template = r#"{"text": "{message}"}"#.to_owned();
        assert_eq!(err(cfg.clone()), "body_template has no {destination} placeholder");
        cfg.body_template = r#"{"to": "\{destination}", "text": "{message}"}"#.to_owned();
        assert!(err(cfg.clone()).contains("valid JSON"));
        // {user} is optional, and the scheme is case-insensitive.
        cfg.body_template = r#"{"to": "{destination}", "text": "{message}"}"#.to_owned();
        cfg.url = "HTTPS://h/x".to_owned();
        HttpGateway::new(cfg).unwrap();
    }

    #[test]
    fn refusals_name_their_item_as_data() {
        let field = |cfg: GatewayConfig| HttpGateway::new(cfg).unwrap_err().field;
        assert_eq!(field(config("ftp://h/x", 1000)), "url");
        assert_eq!(field(config("http://h:99999/x", 1000)), "url");
        assert_eq!(field(config("http://h/x", 0)), "timeout");
        let mut cfg = config("http://h/x", 1000);
        cfg.authorization = Some(" ".to_owned());
        assert_eq!(field(cfg), "authorization");
        let mut cfg = config("http://h/x", 1000);
        cfg.body_template = r#"{"to": "{destination}"}"#.to_owned();
        assert_eq!(field(cfg), "body_template");
    }

    #[test]
    fn templates_that_depend_on_the_value_are_refused() {
        // Valid or not depending on the first letter of the value: refused up front.
        let fake = FakeGateway::start(Behaviour::Accept);
        let mut cfg = config(&fake.url(), 1000);
        cfg.body_template = r#"{"to": "{destination}", "text": "\u00{message}"}"#.to_owned();
        assert!(HttpGateway::new(cfg.clone()).is_err());
        cfg.body_template = r#"{"to": "{destination}", "text": "\{message}"}"#.to_owned();
        assert!(HttpGateway::new(cfg.clone()).is_err());
        cfg.body_template = r#"{"to": "{destination}", "text": "{message}", "n": {user}}"#.to_owned();
        assert!(HttpGateway::new(cfg).is_err());
        assert!(fake.requests().is_empty());
    }

    #[test]
    fn error_display() {
        assert_eq!(SendError::Status(404).to_string(), "the gateway answered HTTP 404");
        assert_eq!(SendError::Template("x".into()).to_string(), "cannot build the request to the gateway: x");
    }

    #[test]
    fn sender_is_object_safe_and_shareable() {
        let fake = FakeGateway::start(Behaviour::Accept);
        let sender: std::sync::Arc<dyn Sender> = std::sync::Arc::new(gateway(&fake.url(), 5000));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let sender = std::sync::Arc::clone(&sender);
                std::thread::spawn(move || sender.send(&format!("u{i}"), "1", MESSAGE))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert_eq!(fake.requests().len(), 4);
    }

    #[test]
    fn raw_stream_sanity() {
        // The fake answers a hand-written request too (integration tests may use curl-like clients).
        let fake = FakeGateway::start(Behaviour::Accept);
        let mut s = TcpStream::connect(fake.addr()).unwrap();
        s.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert_eq!(fake.requests()[0].body, "abc");
        assert_eq!(fake.requests()[0].path, "/x");
    }
}

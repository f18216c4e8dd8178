//! The calls to Duo's Auth API: each request signed (`sign`), bounded by one
//! deadline, its answer read as Duo writes it: `{"stat": "OK", "response":
//! {...}}`, or `{"stat": "FAIL", "code": 40103, "message": "..."}` with a 4xx.
//!
//! A 429 (rate limited) starts a back-off: calls are not sent for 1 s, then 2,
//! 4, ... up to 32 s while Duo keeps answering 429; the first other answer ends
//! it. Any other 3xx or 4xx is a refusal, Duo's JSON or not: a relay or proxy
//! that refuses or redirects the call (its own 403, 407) must not read as "Duo
//! is down", which `failmode = safe` would turn into an Accept. Neither the keys
//! nor what the user typed ever appear in an error.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::sign::{rfc2822, Signer, Version};
use crate::channel::http::{self, Failure, Pool};
use crate::channel::setup::SetupError;
use crate::channel::tls;
use crate::config::duo::endpoint::{self, Endpoint};
use crate::text::printable;

/// Duo's answers are small; longer ones are not read.
const MAX_ANSWER: usize = 64 * 1024;
const FIRST_BACK_OFF: Duration = Duration::from_secs(1);
const LONGEST_BACK_OFF: Duration = Duration::from_secs(32);

/// Duo's `response` object of a successful call.
pub type Answer = serde_json::Map<String, Value>;

/// Why a call gave no answer to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Duo could not be reached, failed (5xx) or answered garbage: failmode decides.
    Unavailable(String),
    /// No answer within `timeout`: as unavailable, except for `/auth_status`, which
    /// Duo answers only when the push's status changes (a long poll).
    TimedOut,
    /// 429.
    RateLimited,
    /// Not sent: the back-off that follows a 429 is running.
    BackingOff,
    /// Duo refused the request (a 4xx with its error): a configuration or request error.
    Refused { status: u16, code: i64, message: String },
    /// A 3xx or 4xx that is not Duo's error: something between the module and Duo
    /// (a relay, a proxy, another host) refused or redirected the call.
    NotDuo { status: u16 },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unavailable(why) => write!(f, "Duo is unavailable: {why}"),
            CallError::TimedOut => write!(f, "Duo is unavailable: no answer in time"),
            CallError::RateLimited | CallError::BackingOff => {
                write!(f, "Duo rate-limits this integration (HTTP 429): backing off")
            }
            CallError::Refused { status, code, message } => {
                write!(f, "Duo refused the request (HTTP {status}, code {code}): {message}")
            }
            CallError::NotDuo { status } => write!(
                f,
                "the call to Duo was refused (HTTP {status} with an answer that is not Duo's: a relay, proxy \
                 or another host in the way?)"
            ),
        }
    }
}

/// The calls the engine makes; a fake stands in for it in unit tests.
pub trait DuoApi: Send + Sync {
    /// `method path` with `params`: Duo's `response` object.
    fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Answer, CallError>;
}

/// The client of Duo's API over HTTP(S).
pub struct HttpDuo {
    endpoint: Endpoint,
    ikey: String,
    skey: String,
    version: Version,
    agent: ureq::Agent,
    /// Until when calls are not sent, and the next back-off's length.
    back_off: Mutex<(Option<Instant>, Duration)>,
}

impl HttpDuo {
    /// The error names the item (`api_host`, `ca_file`, `ca_path`) and says what is
    /// wrong with it or with the trust store. `ca_file`/`ca_path`, when set, are
    /// the CAs trusted (those alone, as for the other clients); else the system's.
    pub fn new(
        api_host: &str,
        ikey: &str,
        skey: &str,
        version: u8,
        timeout: Duration,
        ca: (Option<&Path>, Option<&Path>),
    ) -> Result<HttpDuo, SetupError> {
        let endpoint = endpoint::parse(api_host).map_err(|why| SetupError::new("api_host", why))?;
        let roots = tls::roots(ca.0, ca.1, [endpoint.base.as_str()], "ca_file", "ca_file is not set, and ")?;
        let agent = http::agent(timeout, roots, Pool::new(1, true));
        Ok(HttpDuo {
            endpoint,
            ikey: ikey.to_string(),
            skey: skey.to_string(),
            version: if version == 2 { Version::V2 } else { Version::V5 },
            agent,
            back_off: Mutex::new((None, FIRST_BACK_OFF)),
        })
    }

    fn backing_off(&self) -> bool {
        let state = self.back_off.lock().unwrap_or_else(|p| p.into_inner());
        state.0.is_some_and(|until| Instant::now() < until)
    }

    fn note_status(&self, status: u16) {
        let mut state = self.back_off.lock().unwrap_or_else(|p| p.into_inner());
        if status == 429 {
            let length = state.1;
            *state = (Some(Instant::now() + length), (length * 2).min(LONGEST_BACK_OFF));
        } else {
            *state = (None, FIRST_BACK_OFF);
        }
    }
}

impl DuoApi for HttpDuo {
    fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Answer, CallError> {
        if self.backing_off() {
            return Err(CallError::BackingOff);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let signer = Signer { ikey: &self.ikey, skey: &self.skey, version: self.version, host: &self.endpoint.host };
        let signed = signer.sign(method, path, params, &rfc2822(now));
        let mut url = format!("{}{path}", self.endpoint.base);
        if !signed.query.is_empty() {
            url = format!("{url}?{}", signed.query);
        }
        let sent = match &signed.body {
            Some((body, content_type)) => self
                .agent
                .post(&url)
                .header("Date", &signed.date)
                .header("Authorization", &signed.authorization)
                .header("Content-Type", *content_type)
                .send(body.as_bytes()),
            None => {
                self.agent.get(&url).header("Date", &signed.date).header("Authorization", &signed.authorization).call()
            }
        };
        let response = sent.map_err(|e| unavailable(http::failure(&e)))?;
        let status = response.status().as_u16();
        self.note_status(status);
        if status == 429 {
            return Err(CallError::RateLimited);
        }
        if status >= 500 {
            return Err(CallError::Unavailable(format!("HTTP status {status}")));
        }
        let body = match http::read_body(response, MAX_ANSWER) {
            Ok(Some(body)) => body,
            Ok(None) if refusal(status) => return Err(CallError::NotDuo { status }),
            Ok(None) => return Err(CallError::Unavailable(format!("the answer is longer than {MAX_ANSWER} bytes"))),
            // The status was read: a refusal stays one however its body ends.
            Err(_) if refusal(status) => return Err(CallError::NotDuo { status }),
            Err(failure) => return Err(unavailable(failure)),
        };
        parse(status, &body)
    }
}

/// A 3xx (redirects are not followed) or a 4xx other than 429: refused, never
/// "unavailable".
fn refusal(status: u16) -> bool {
    (300..500).contains(&status) && status != 429
}

fn unavailable(f: Failure) -> CallError {
    match f {
        Failure::Timeout => CallError::TimedOut,
        Failure::Unreachable(why) => CallError::Unavailable(why),
    }
}

/// Duo's JSON: the `response` object of a 200 with `stat` OK, or its error. A
/// 3xx or 4xx is a refusal whatever its body says.
pub fn parse(status: u16, body: &[u8]) -> Result<Answer, CallError> {
    let garbage = || match refusal(status) {
        true => CallError::NotDuo { status },
        false => CallError::Unavailable(format!("HTTP status {status} with an answer that is not Duo's JSON")),
    };
    let json: Value = serde_json::from_slice(body).map_err(|_| garbage())?;
    match (status, json.get("stat").and_then(Value::as_str)) {
        (200, Some("OK")) => match json.get("response") {
            Some(Value::Object(answer)) => Ok(answer.clone()),
            _ => Err(garbage()),
        },
        (_, Some("FAIL")) => {
            let code = json.get("code").and_then(Value::as_i64).unwrap_or(0);
            let text = |key: &str| json.get(key).and_then(Value::as_str).map(|t| printable(t, 200));
            let message = match (text("message"), text("message_detail")) {
                (Some(m), Some(d)) => format!("{m} ({d})"),
                (Some(m), None) => m,
                _ => "no reason given".to_string(),
            };
            Err(CallError::Refused { status, code, message })
        }
        _ => Err(garbage()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_errors() {
        let ok = parse(200, br#"{"stat":"OK","response":{"result":"allow"}}"#).unwrap();
        assert_eq!(ok["result"], "allow");
        let refused = parse(401, br#"{"stat":"FAIL","code":40103,"message":"Invalid signature"}"#);
        assert_eq!(refused, Err(CallError::Refused { status: 401, code: 40103, message: "Invalid signature".into() }));
        assert!(matches!(parse(200, b"<html>"), Err(CallError::Unavailable(_))));
        assert!(matches!(parse(200, br#"{"stat":"OK","response":[]}"#), Err(CallError::Unavailable(_))));
    }

    /// A relay's or proxy's own page, a redirect, a 404: refused, never "Duo is
    /// down" (which failmode = safe would accept).
    #[test]
    fn a_3xx_or_4xx_that_is_not_duos_is_refused() {
        let page = b"<html><body>403 Forbidden</body></html>";
        for status in [301, 302, 307, 400, 401, 403, 404, 407] {
            assert_eq!(parse(status, page), Err(CallError::NotDuo { status }), "{status}");
            assert_eq!(parse(status, b""), Err(CallError::NotDuo { status }), "{status}");
        }
        assert!(matches!(parse(200, page), Err(CallError::Unavailable(_))), "a 200 that is not Duo's: garbage");
    }

    #[test]
    fn a_429_backs_off_without_calling_again() {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("http://{}", listener.local_addr().unwrap());
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"stat":"FAIL","code":42901,"message":"Too Many Requests"}"#;
                let answer = format!("HTTP/1.1 429 Too Many Requests\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let mut stream = stream;
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        let duo = HttpDuo::new(&host, "DIKEY", "skey", 5, Duration::from_secs(2), (None, None)).unwrap();
        assert_eq!(duo.call("GET", "/auth/v2/check", &[]), Err(CallError::RateLimited));
        assert_eq!(duo.call("GET", "/auth/v2/check", &[]), Err(CallError::BackingOff));
        assert_eq!(asked.load(Ordering::SeqCst), 1, "the second call waits out the back-off");
        assert_eq!(duo.back_off.lock().unwrap().1, Duration::from_secs(2), "the next back-off doubles");
    }
}

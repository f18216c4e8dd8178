//! A fake privacyIDEA: a real HTTP/1.1 server on 127.0.0.1 that answers
//! `/validate/check` and `/validate/polltransaction` the way privacyIDEA 3.x
//! documents them, and misbehaves on demand (errors, garbage, huge or slow
//! answers, a challenge without a transaction id). Connections are kept open
//! for further requests, so that connection reuse can be seen and measured.
//!
//! Users (realm `corp`): the PIN is `pin` and the one good code `123456`, so
//! `pin123456` is accepted. A user whose name starts with `mail` gets an
//! e-mail challenge for the PIN alone (its code is `654321`); one whose name
//! starts with `push` gets a push challenge, approved or declined through
//! [`FakePrivacyIdea::answer_push`]. Any other user name is not found (ERR904).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

// Every fake includes it, so that each stays usable alone (the example includes this one).
#[allow(clippy::duplicate_mod)]
#[path = "fake_http.rs"]
mod fake_http;
pub use fake_http::Recorded as PiRecorded;
use fake_http::{Connections, Reply, Server};

/// How the fake answers the requests that come after it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PiBehaviour {
    Normal,
    /// HTTP 500 with privacyIDEA's JSON error.
    Error500,
    /// 200 with an HTML page.
    NotJson,
    /// A CHALLENGE with no transaction id anywhere.
    ChallengeWithoutId,
    /// 200 with a 2 MiB JSON body.
    Huge,
    /// Answers after this long.
    Slow(Duration),
    /// Reads the request and closes the connection.
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PushAnswer {
    Pending,
    Accepted,
    Declined,
}

struct Transaction {
    user: String,
    code: Option<&'static str>,
    push: PushAnswer,
}

struct Shared {
    behaviour: Mutex<PiBehaviour>,
    requests: Mutex<Vec<PiRecorded>>,
    transactions: Mutex<HashMap<String, Transaction>>,
    next_id: AtomicUsize,
    /// Keep each request for [`FakePrivacyIdea::requests`] (off for benchmarks).
    record: bool,
}

pub struct FakePrivacyIdea {
    server: Server,
    shared: Arc<Shared>,
}

pub const GOOD_PASS: &str = "pin123456";
pub const MAIL_CODE: &str = "654321";

impl FakePrivacyIdea {
    pub fn start() -> FakePrivacyIdea {
        Self::start_on(0, true)
    }

    /// On `port` (0: any free one); `record` keeps every request for inspection.
    pub fn start_on(port: u16, record: bool) -> FakePrivacyIdea {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(PiBehaviour::Normal),
            requests: Mutex::new(Vec::new()),
            transactions: Mutex::new(HashMap::new()),
            next_id: AtomicUsize::new(1),
            record,
        });
        let handling = shared.clone();
        let server =
            Server::start("fake privacyIDEA", port, Connections::KeepAlive, move |request| handle(request, &handling));
        FakePrivacyIdea { server, shared }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.addr().port())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    pub fn set(&self, behaviour: PiBehaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    pub fn requests(&self) -> Vec<PiRecorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.accepted()
    }

    /// Approves (true) or declines the pending push of `user`; false when there is none.
    pub fn answer_push(&self, user: &str, approve: bool) -> bool {
        let mut txs = self.shared.transactions.lock().unwrap();
        let Some(tx) = txs.values_mut().find(|t| t.user == user && t.code.is_none() && t.push == PushAnswer::Pending)
        else {
            return false;
        };
        tx.push = if approve { PushAnswer::Accepted } else { PushAnswer::Declined };
        true
    }
}

/// One request of a connection that stays open for the next.
fn handle(request: PiRecorded, shared: &Shared) -> Reply {
    if shared.record {
        shared.requests.lock().unwrap().push(request.clone());
    }
    let behaviour = *shared.behaviour.lock().unwrap();
    let (status, body) = match behaviour {
        PiBehaviour::Close => return Reply::Close,
        PiBehaviour::Error500 => ("500 INTERNAL SERVER ERROR", error(500, "ERR500: internal error")),
        PiBehaviour::NotJson => ("200 OK", "<html><body>Bad gateway</body></html>".to_string()),
        PiBehaviour::Huge => ("200 OK", format!("{{\"pad\":\"{}\"}}", "x".repeat(2 << 20))),
        PiBehaviour::ChallengeWithoutId => (
            "200 OK",
            r#"{"result":{"status":true,"value":false,"authentication":"CHALLENGE"},"detail":{"message":"enter otp"}}"#
                .to_string(),
        ),
        PiBehaviour::Slow(d) => {
            thread::sleep(d);
            route(&request, shared)
        }
        PiBehaviour::Normal => route(&request, shared),
    };
    Reply::json(status, body)
}

fn error(code: u32, message: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","result":{{"status":false,"error":{{"code":{code},"message":"{message}"}}}},"version":"privacyIDEA fake"}}"#
    )
}

fn verdict(value: bool, authentication: &str, detail: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","result":{{"status":true,"value":{value},"authentication":"{authentication}"}},"detail":{detail},"version":"privacyIDEA fake"}}"#
    )
}

/// Form or query fields, percent-decoded.
fn fields(text: &str) -> HashMap<String, String> {
    text.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(request: &PiRecorded, shared: &Shared) -> (&'static str, String) {
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    match (request.method.as_str(), path) {
        ("POST", "/validate/check") => check(&fields(&request.body), shared),
        ("GET", "/validate/polltransaction") => {
            let id = fields(query).get("transaction_id").cloned().unwrap_or_default();
            let txs = shared.transactions.lock().unwrap();
            let (value, status) = match txs.get(&id).map(|t| t.push) {
                Some(PushAnswer::Accepted) => (true, "accept"),
                Some(PushAnswer::Declined) => (false, "declined"),
                _ => (false, "pending"),
            };
            (
                "200 OK",
                verdict(
                    value,
                    if value { "ACCEPT" } else { "REJECT" },
                    &format!(r#"{{"challenge_status":"{status}"}}"#),
                ),
            )
        }
        _ => ("404 NOT FOUND", error(404, "ERR404: not found")),
    }
}

fn check(form: &HashMap<String, String>, shared: &Shared) -> (&'static str, String) {
    let user = form.get("user").cloned().unwrap_or_default();
    let pass = form.get("pass").cloned().unwrap_or_default();
    let known = !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric());
    let realm_ok = form.get("realm").is_none_or(|r| r == "corp");
    if !known || !realm_ok || user.starts_with("nobody") {
        return ("400 BAD REQUEST", error(904, "ERR904: The user can not be found in any resolver in this realm!"));
    }
    let reject = verdict(false, "REJECT", r#"{"message":"wrong otp pin"}"#);
    let accept = verdict(
        true,
        "ACCEPT",
        &format!(
            r#"{{"message":"matching 1 tokens","serial":"FAKE0001","user":{{"username":"{user}","groups":["vpn-admins","staff"]}}}}"#
        ),
    );
    if let Some(id) = form.get("transaction_id") {
        let mut txs = shared.transactions.lock().unwrap();
        let Some(tx) = txs.get(id).filter(|t| t.user == user) else { return ("200 OK", reject) };
        let good = match tx.code {
            Some(code) => pass == code,
            None => (pass.is_empty() && tx.push == PushAnswer::Accepted) || pass == "123456",
        };
        if good {
            txs.remove(id);
            return ("200 OK", accept);
        }
        return ("200 OK", reject);
    }
    if pass == GOOD_PASS {
        return ("200 OK", accept);
    }
    let kind = if user.starts_with("mail") {
        "email"
    } else if user.starts_with("push") {
        "push"
    } else {
        ""
    };
    if pass != "pin" || kind.is_empty() {
        return ("200 OK", reject);
    }
    let id = format!("{:020}", 10_000_000_000_000_000u64 + shared.next_id.fetch_add(1, Ordering::SeqCst) as u64);
    let (mode, message, code) = match kind {
        "email" => ("interactive", "Enter the OTP from the email", Some(MAIL_CODE)),
        _ => ("poll", "Please confirm the authentication on your mobile device!", None),
    };
    shared
        .transactions
        .lock()
        .unwrap()
        .insert(id.clone(), Transaction { user: user.clone(), code, push: PushAnswer::Pending });
    let detail = format!(
        r#"{{"transaction_id":"{id}","message":"{message}","multi_challenge":[{{"transaction_id":"{id}","serial":"FAKE{kind}","type":"{kind}","client_mode":"{mode}","message":"{message}"}}]}}"#
    );
    ("200 OK", verdict(false, "CHALLENGE", &detail))
}

//! A fake push provider: a real HTTP/1.1 server on 127.0.0.1 that speaks the
//! generic provider's JSON contract (see channel/push.rs), records what it is sent
//! and answers as told.
//!
//! Shared by the unit tests of channel/push.rs (included with #[path]) and the
//! integration tests. Each connection gets its own thread and one request,
//! answered with `Connection: close`. A request is counted and recorded before
//! it is answered, so once a client has its answer (or has given up) the
//! counters already include it.
//!
//! Routes, under any path prefix (so that a base URL such as
//! `http://127.0.0.1:PORT/api/v1` works too):
//! - `POST .../push`: a JSON object with string fields `user`, `message`,
//!   `client` and `request_id`, else 400. A new `request_id` creates a push
//!   (201); a known one answers the existing push (200) and creates nothing.
//! - `GET .../push/{id}`: the push's status, or 404 for an unknown id.
//! - `DELETE .../push/{id}`: cancels it (204; the push then reads `expired`),
//!   or 404 for an unknown id.
//!
//! The status a push reads is worked out when it is asked for, from the
//! behaviour set at that moment and the push's age, so a test can create a push
//! under `NeverAnswer` and approve it later with `ApproveAfter(Duration::ZERO)`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How the provider answers the requests that come after it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushBehaviour {
    /// Status is "pending" until that long after creation, then "approved".
    ApproveAfter(Duration),
    /// Status is "pending" until that long after creation, then "denied".
    DenyAfter(Duration),
    /// Create works; status stays "pending" forever.
    NeverAnswer,
    /// Every call answers HTTP 500.
    Error500,
    /// Every call answers 200 with a body that is not JSON.
    Malformed,
    /// Every call: read the request, then close the connection without answering.
    Close,
    /// Every call: read the request, never answer (until the client closes).
    Hang,
    /// Every call answers this HTTP status with a small JSON error body.
    Status(u16),
    /// Every call answers 200 with JSON that is not the contract's (no id, a number
    /// for the status).
    WrongJson,
    /// Every call answers 200 with a body of several MiB.
    Huge,
    /// Every call: status line and headers of a 200, half of the body, then the
    /// connection closed.
    CutBody,
    /// Every call: status line and headers of a 200, half of the body, then
    /// silence until the client closes.
    StallBody,
    /// Status line and headers of a 200, then the body one byte every 200 ms, for
    /// minutes.
    Trickle,
    /// Every call: another protocol's banner and binary bytes, not HTTP.
    NotHttp,
    /// Every call: a 200 whose first header line never ends.
    EndlessHeader,
}

// Every fake includes it, so that each stays usable alone (unit tests include one).
#[allow(clippy::duplicate_mod)]
#[path = "fake_http.rs"]
mod fake_http;
/// One request as the provider received it.
pub use fake_http::Recorded as PushRecorded;
use fake_http::{lock, Connections, Reply, Server};

struct Push {
    id: String,
    created: Instant,
    cancelled: bool,
}

#[derive(Default)]
struct Pushes {
    /// By id.
    by_id: HashMap<String, Push>,
    /// request_id → id.
    by_request: HashMap<String, String>,
    created: usize,
    cancelled: usize,
    last_create_body: Option<Value>,
}

struct Shared {
    behaviour: Mutex<PushBehaviour>,
    /// How long each answer waits after the request was read.
    delay: Mutex<Duration>,
    requests: Mutex<Vec<PushRecorded>>,
    pushes: Mutex<Pushes>,
}

pub struct FakePush {
    server: Server,
    shared: Arc<Shared>,
}

impl FakePush {
    pub fn start(behaviour: PushBehaviour) -> FakePush {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            delay: Mutex::new(Duration::ZERO),
            requests: Mutex::new(Vec::new()),
            pushes: Mutex::new(Pushes::default()),
        });
        let handling = Arc::clone(&shared);
        let server =
            Server::start("fake push provider", 0, Connections::OneRequest, move |request| handle(request, &handling));
        FakePush { server, shared }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn set_behaviour(&self, b: PushBehaviour) {
        *lock(&self.shared.behaviour) = b;
    }

    /// Every answer from now on comes that long after its request was read
    /// (a slow provider); `Duration::ZERO` answers at once.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }

    /// Pushes actually created; a create with a known request_id is not one.
    pub fn created(&self) -> usize {
        lock(&self.shared.pushes).created
    }

    /// HTTP requests received, of all kinds and whatever the answer.
    pub fn calls(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Pushes cancelled (each counted once, however often it is cancelled).
    pub fn cancelled(&self) -> usize {
        lock(&self.shared.pushes).cancelled
    }

    /// The JSON body of the last create that was answered as a create.
    pub fn last_create_body(&self) -> Option<Value> {
        lock(&self.shared.pushes).last_create_body.clone()
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<PushRecorded> {
        lock(&self.shared.requests).clone()
    }
}

fn handle(request: PushRecorded, shared: &Shared) -> Reply {
    let behaviour = *lock(&shared.behaviour);
    lock(&shared.requests).push(request.clone());
    let delay = *lock(&shared.delay);
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    // What a working provider would say, for the answers that break off half-way.
    let pending = r#"{"id":"push-cut","status":"pending"}"#;
    match behaviour {
        PushBehaviour::Status(code) => Reply::json(&format!("{code} Failure"), r#"{"error":"refused"}"#),
        PushBehaviour::WrongJson => Reply::json("200 OK", r#"{"push":{"ref":7},"status":1}"#),
        PushBehaviour::Huge => Reply::Huge,
        PushBehaviour::CutBody => Reply::CutBody { status: "200 OK".into(), body: pending.into() },
        PushBehaviour::Trickle => Reply::Trickle { status: "200 OK".into() },
        PushBehaviour::NotHttp => Reply::NotHttp,
        PushBehaviour::EndlessHeader => Reply::EndlessHeader,
        PushBehaviour::StallBody => Reply::StallBody { status: "200 OK".into(), body: pending.into() },
        PushBehaviour::Error500 => Reply::json("500 Internal Server Error", r#"{"error":"failed"}"#),
        PushBehaviour::Malformed => Reply::json("200 OK", "<html>not json</html>"),
        PushBehaviour::Close => Reply::Close,
        PushBehaviour::Hang => Reply::Hang,
        PushBehaviour::ApproveAfter(_) | PushBehaviour::DenyAfter(_) | PushBehaviour::NeverAnswer => {
            let (status, body) = route(&request, behaviour, shared);
            Reply::json(status, body)
        }
    }
}

/// The answer of a provider that works: status line and body.
fn route(request: &PushRecorded, behaviour: PushBehaviour, shared: &Shared) -> (&'static str, String) {
    let path = request.path.split(['?', '#']).next().unwrap_or("");
    let not_found = ("404 Not Found", json!({"error": "not found"}).to_string());
    if path.ends_with("/push") {
        if request.method != "POST" {
            return ("405 Method Not Allowed", json!({"error": "method"}).to_string());
        }
        return create(&request.body, behaviour, shared);
    }
    let Some((prefix, id)) = path.rsplit_once('/') else {
        return not_found;
    };
    if !prefix.ends_with("/push") || id.is_empty() {
        return not_found;
    }
    let mut pushes = lock(&shared.pushes);
    match request.method.as_str() {
        "GET" => match pushes.by_id.get(id) {
            Some(push) => ("200 OK", json!({"id": push.id, "status": status_of(push, behaviour)}).to_string()),
            None => not_found,
        },
        "DELETE" => {
            let newly = match pushes.by_id.get_mut(id) {
                Some(push) => !std::mem::replace(&mut push.cancelled, true),
                None => return not_found,
            };
            if newly {
                pushes.cancelled += 1;
            }
            ("204 No Content", String::new())
        }
        _ => ("405 Method Not Allowed", json!({"error": "method"}).to_string()),
    }
}

fn create(body: &str, behaviour: PushBehaviour, shared: &Shared) -> (&'static str, String) {
    let bad = ("400 Bad Request", json!({"error": "bad request"}).to_string());
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return bad;
    };
    let fields = ["user", "message", "client", "request_id"];
    if !fields.iter().all(|f| value.get(f).is_some_and(Value::is_string)) {
        return bad;
    }
    let request_id = value["request_id"].as_str().unwrap_or("").to_owned();
    let mut pushes = lock(&shared.pushes);
    if let Some(id) = pushes.by_request.get(&request_id) {
        if let Some(push) = pushes.by_id.get(id) {
            let answer = json!({"id": push.id, "status": status_of(push, behaviour)});
            return ("200 OK", answer.to_string());
        }
    }
    pushes.created += 1;
    let id = format!("push-{}", pushes.created);
    pushes.by_request.insert(request_id, id.clone());
    pushes.by_id.insert(id.clone(), Push { id: id.clone(), created: Instant::now(), cancelled: false });
    pushes.last_create_body = Some(value);
    ("201 Created", json!({"id": id, "status": "pending"}).to_string())
}

fn status_of(push: &Push, behaviour: PushBehaviour) -> &'static str {
    if push.cancelled {
        return "expired";
    }
    match behaviour {
        PushBehaviour::ApproveAfter(d) if push.created.elapsed() >= d => "approved",
        PushBehaviour::DenyAfter(d) if push.created.elapsed() >= d => "denied",
        _ => "pending",
    }
}

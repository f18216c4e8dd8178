//! A fake SMS / e-mail gateway: a real HTTP/1.1 server on 127.0.0.1 that
//! records what it is sent and answers as told (accept, fail, hang, close).
//!
//! Shared by the unit tests of channel/gateway.rs (included with #[path]) and the
//! integration tests, so it uses nothing but std. Each connection gets its own
//! thread and one request, answered with `Connection: close`. A request is
//! recorded before it is answered, so once a client has its answer (or has given
//! up) `requests()` already holds it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How the gateway answers the requests that come after it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// HTTP 200 with a small JSON body.
    Accept,
    /// HTTP 500.
    Fail,
    /// Reads the request and never answers (until the client closes).
    Hang,
    /// Reads the request and closes the connection without a word.
    Close,
    /// This HTTP status with a small JSON error body.
    Status(u16),
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// HTTP 200 with a body of several MiB.
    Huge,
    /// Status line and headers of a 200, half of the body, then the connection closed.
    CutBody,
    /// Status line and headers of a 200, half of the body, then silence until
    /// the client closes.
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
pub use fake_http::Recorded;
use fake_http::{Connections, Reply, Server};

struct Shared {
    behaviour: Mutex<Behaviour>,
    /// How long each answer waits after the request was read.
    delay: Mutex<Duration>,
    requests: Mutex<Vec<Recorded>>,
    /// When set, a request without exactly this HTTP Basic user and password gets a 401.
    basic: Mutex<Option<(String, String)>>,
}

pub struct FakeGateway {
    server: Server,
    shared: Arc<Shared>,
}

impl FakeGateway {
    pub fn start(behaviour: Behaviour) -> FakeGateway {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            delay: Mutex::new(Duration::ZERO),
            requests: Mutex::new(Vec::new()),
            basic: Mutex::new(None),
        });
        let handling = Arc::clone(&shared);
        let server =
            Server::start("fake gateway", 0, Connections::OneRequest, move |request| handle(request, &handling));
        FakeGateway { server, shared }
    }

    /// The URL to POST to.
    pub fn url(&self) -> String {
        format!("http://{}/send", self.server.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = b;
    }

    /// From now on, answers 401 to a request without this HTTP Basic user and
    /// password (as the SMS APIs that take an account id and a token do).
    pub fn require_basic(&self, user: &str, password: &str) {
        *self.shared.basic.lock().unwrap() = Some((user.to_owned(), password.to_owned()));
    }

    /// Every answer from now on comes that long after its request was read
    /// (a slow gateway); `Duration::ZERO` answers at once.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }
}

fn handle(request: Recorded, shared: &Shared) -> Reply {
    let behaviour = *shared.behaviour.lock().unwrap();
    let wanted = shared.basic.lock().unwrap().clone();
    let refused = wanted.is_some() && request.basic_auth() != wanted;
    shared.requests.lock().unwrap().push(request);
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    let queued = r#"{"status":"queued"}"#;
    if refused {
        return Reply::json("401 Unauthorized", r#"{"error":"authenticate"}"#);
    }
    match behaviour {
        Behaviour::Status(code) => Reply::json(&format!("{code} Failure"), r#"{"error":"refused"}"#),
        Behaviour::Garbage => Reply::json("200 OK", "<html>\x00 not json"),
        Behaviour::Huge => Reply::Huge,
        Behaviour::CutBody => Reply::CutBody { status: "200 OK".into(), body: queued.into() },
        Behaviour::Trickle => Reply::Trickle { status: "200 OK".into() },
        Behaviour::NotHttp => Reply::NotHttp,
        Behaviour::EndlessHeader => Reply::EndlessHeader,
        Behaviour::StallBody => Reply::StallBody { status: "200 OK".into(), body: queued.into() },
        Behaviour::Accept => Reply::json("200 OK", queued),
        Behaviour::Fail => Reply::json("500 Internal Server Error", r#"{"error":"failed"}"#),
        Behaviour::Close => Reply::Close,
        Behaviour::Hang => Reply::Hang,
    }
}

//! A fake SMS / e-mail gateway: a real HTTP/1.1 server on 127.0.0.1 that
//! records what it is sent and answers as told (accept, fail, hang, close).
//!
//! Shared by the unit tests of src/gateway.rs (included with #[path]) and the
//! integration tests, so it uses nothing but std. Each connection gets its own
//! thread and one request, answered with `Connection: close`. A request is
//! recorded before it is answered, so once a client has its answer (or has given
//! up) `requests()` already holds it.
#![allow(dead_code)]

use std::io::{BufReader, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
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

// Both fakes include it, so that each stays usable alone (unit tests include one).
#[allow(clippy::duplicate_mod)]
#[path = "fake_http.rs"]
mod fake_http;
pub use fake_http::Recorded;
use fake_http::{answer, read_request, IDLE_LIMIT};
#[allow(clippy::duplicate_mod)]
#[path = "fault_answers.rs"]
mod fault_answers;

struct Shared {
    behaviour: Mutex<Behaviour>,
    /// How long each answer waits after the request was read.
    delay: Mutex<Duration>,
    requests: Mutex<Vec<Recorded>>,
    /// Connections left hanging, shut down when the gateway is dropped.
    hanging: Mutex<Vec<TcpStream>>,
    stopped: AtomicBool,
}

pub struct FakeGateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeGateway {
    pub fn start(behaviour: Behaviour) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind the fake gateway");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            delay: Mutex::new(Duration::ZERO),
            requests: Mutex::new(Vec::new()),
            hanging: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        // Detached: the test process does not wait for it.
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accepting);
                thread::spawn(move || serve(stream, &shared));
            }
        });
        FakeGateway { addr, shared }
    }

    /// The URL to POST to.
    pub fn url(&self) -> String {
        format!("http://{}/send", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = b;
    }

    /// Every answer from now on comes that long after its request was read
    /// (a slow gateway); `Duration::ZERO` answers at once.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag and closes the listener.
        let _ = TcpStream::connect(self.addr);
        for stream in self.shared.hanging.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(IDLE_LIMIT));
    let _ = stream.set_write_timeout(Some(IDLE_LIMIT));
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let behaviour = *shared.behaviour.lock().unwrap();
    shared.requests.lock().unwrap().push(request);
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    let mut stream = stream;
    let queued = r#"{"status":"queued"}"#;
    match behaviour {
        Behaviour::Status(code) => answer(&mut stream, &format!("{code} Failure"), r#"{"error":"refused"}"#),
        Behaviour::Garbage => answer(&mut stream, "200 OK", "<html>\x00 not json"),
        Behaviour::Huge => fault_answers::huge(&mut stream),
        Behaviour::CutBody => fault_answers::cut(&mut stream, "200 OK", queued),
        Behaviour::Trickle => fault_answers::trickle(&mut stream, "200 OK"),
        Behaviour::NotHttp => fault_answers::not_http(&mut stream),
        Behaviour::EndlessHeader => fault_answers::endless_header(&mut stream),
        Behaviour::StallBody => {
            if let Ok(copy) = stream.try_clone() {
                shared.hanging.lock().unwrap().push(copy);
            }
            if !shared.stopped.load(Ordering::SeqCst) {
                fault_answers::stall(&mut stream, &mut reader, "200 OK", queued);
            }
        }
        Behaviour::Accept => answer(&mut stream, "200 OK", queued),
        Behaviour::Fail => answer(&mut stream, "500 Internal Server Error", r#"{"error":"failed"}"#),
        Behaviour::Close => {}
        Behaviour::Hang => {
            if let Ok(copy) = stream.try_clone() {
                shared.hanging.lock().unwrap().push(copy);
            }
            if shared.stopped.load(Ordering::SeqCst) {
                // Dropped meanwhile, after it shut the hanging connections down.
                return;
            }
            // Waits for the client to give up and close (read gives 0 or fails).
            let mut sink = [0u8; 1024];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        }
    }
    // Dropping the stream closes it: all of the request was read, so the client
    // sees an orderly end of the connection.
}

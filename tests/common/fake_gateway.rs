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
}

// Both fakes include it, so that each stays usable alone (unit tests include one).
#[allow(clippy::duplicate_mod)]
#[path = "fake_http.rs"]
mod fake_http;
pub use fake_http::Recorded;
use fake_http::{answer, read_request, IDLE_LIMIT};


struct Shared {
    behaviour: Mutex<Behaviour>,
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
    let mut stream = stream;
    match behaviour {
        Behaviour::Accept => answer(&mut stream, "200 OK", r#"{"status":"queued"}"#),
        Behaviour::Fail => answer(
            &mut stream,
            "500 Internal Server Error",
            r#"{"error":"failed"}"#,
        ),
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

//! A fake SMS / e-mail gateway: a real HTTP/1.1 server on 127.0.0.1 that
//! records what it is sent and answers as told (accept, fail, hang, close).
//!
//! Shared by the unit tests of src/gateway.rs (included with #[path]) and the
//! integration tests, so it uses nothing but std. Each connection gets its own
//! thread and one request, answered with `Connection: close`. A request is
//! recorded before it is answered, so once a client has its answer (or has given
//! up) `requests()` already holds it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
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
}

/// One request as the gateway received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// In the order sent, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    /// The first header of that name (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Bounds a connection whose client neither sends nor closes, so that no
/// thread waits forever.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

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

fn answer(stream: &mut TcpStream, status: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads one request: request line, headers, then a body of Content-Length
/// bytes. None when the client closed early or sent something that is not HTTP.
fn read_request(reader: &mut impl BufRead) -> Option<Recorded> {
    let mut head_size = 0;
    let request_line = read_line(reader, &mut head_size)?;
    let mut parts = request_line.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, &mut head_size)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length = match headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        Some((_, v)) => v.parse::<usize>().ok()?,
        None => 0,
    };
    if length > MAX_BODY {
        return None;
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn read_line(reader: &mut impl BufRead, head_size: &mut usize) -> Option<String> {
    let mut line = Vec::new();
    let n = Read::take(&mut *reader, (MAX_HEAD - *head_size) as u64)
        .read_until(b'\n', &mut line)
        .ok()?;
    *head_size += n;
    if n == 0 || !line.ends_with(b"\n") {
        return None;
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    String::from_utf8(line).ok()
}

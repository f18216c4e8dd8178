//! The HTTP/1.1 every fake server (gateway, push provider, privacyIDEA) speaks,
//! written by hand: one serving loop that accepts connections on 127.0.0.1,
//! reads each request within bounds, hands it to the fake's handler and writes
//! the handler's [`Reply`], whole or broken on purpose.
//!
//! Each connection gets its own thread. The handler runs before anything is
//! written, so whatever it records is there once a client has its answer (or
//! has given up).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

// Loaded once for each fake, since each includes this file to stay usable alone.
#[allow(clippy::duplicate_mod)]
#[path = "fault_answers.rs"]
mod fault_answers;

/// One request as a fake server received it.
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
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The fields of an `application/x-www-form-urlencoded` body, decoded, in order;
    /// None when the body is not one.
    pub fn form_fields(&self) -> Option<Vec<(String, String)>> {
        self.body
            .split('&')
            .map(|pair| pair.split_once('=').and_then(|(n, v)| Some((unescape(n)?, unescape(v)?))))
            .collect()
    }

    /// The first form field of that name, decoded.
    pub fn form(&self, name: &str) -> Option<String> {
        self.form_fields()?.into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The user and password of an `Authorization: Basic` header.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let token = self.header("Authorization")?.strip_prefix("Basic ")?;
        let pair = String::from_utf8(base64_decode(token.trim())?).ok()?;
        let (user, password) = pair.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }
}

/// Form decoding: `+` is a space, `%XX` a byte; None when an escape is broken
/// or the bytes are not UTF-8.
fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut input = text.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next()?, input.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

/// Standard base64 with padding (RFC 4648), as HTTP Basic uses it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n: u32 = 0;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | ALPHABET.iter().position(|&a| a == c)? as u32;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

/// Bounds a connection whose client neither sends nor closes, so that no
/// thread waits forever.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// What a fake answers to one request.
#[derive(Debug)]
pub enum Reply {
    /// A JSON answer: status line (such as "200 OK") and body.
    Json { status: String, body: String },
    /// No answer: the connection is closed.
    Close,
    /// No answer: the connection stays open until the client closes it (or the
    /// fake is dropped).
    Hang,
    /// 200 with a body of several MiB.
    Huge,
    /// The status line and headers, half of `body`, then the connection closed.
    CutBody { status: String, body: String },
    /// The status line and headers, half of `body`, then silence until the
    /// client closes (or the fake is dropped).
    StallBody { status: String, body: String },
    /// The status line and headers, then a body of one byte every 200 ms, for minutes.
    Trickle { status: String },
    /// Another protocol's banner and binary bytes, not HTTP.
    NotHttp,
    /// A 200 whose first header line never ends.
    EndlessHeader,
}

impl Reply {
    pub fn json(status: &str, body: impl Into<String>) -> Reply {
        Reply::Json { status: status.to_owned(), body: body.into() }
    }
}

/// How many requests a connection serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connections {
    /// One: the answer says `Connection: close`, and the connection ends with it.
    OneRequest,
    /// One request after another until the client closes (or a reply ends it).
    KeepAlive,
}

type Handler = dyn Fn(Recorded) -> Reply + Send + Sync;

struct Listening {
    stopped: AtomicBool,
    accepted: AtomicUsize,
    /// Connections left open without an answer, shut down when the server is dropped.
    hanging: Mutex<Vec<TcpStream>>,
}

/// A lock that a panicking test thread elsewhere does not poison for the rest.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A listening fake server; dropping it stops accepting and ends the hanging connections.
pub struct Server {
    addr: SocketAddr,
    listening: Arc<Listening>,
}

impl Server {
    /// Listens on 127.0.0.1:`port` (0: a free port) and answers every request with `handler`.
    pub fn start(
        name: &str,
        port: u16,
        connections: Connections,
        handler: impl Fn(Recorded) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("cannot bind the {name}: {e}"));
        let addr = listener.local_addr().unwrap();
        let listening = Arc::new(Listening {
            stopped: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            hanging: Mutex::default(),
        });
        let handler: Arc<Handler> = Arc::new(handler);
        let accepting = Arc::clone(&listening);
        // Detached: the test process does not wait for it.
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                let (listening, handler) = (Arc::clone(&accepting), Arc::clone(&handler));
                thread::spawn(move || serve(stream, connections, &*handler, &listening));
            }
        });
        Server { addr, listening }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.listening.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.listening.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag and closes the listener.
        let _ = TcpStream::connect(self.addr);
        for stream in lock(&self.listening.hanging).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn serve(stream: TcpStream, connections: Connections, handler: &Handler, listening: &Listening) {
    let _ = stream.set_read_timeout(Some(IDLE_LIMIT));
    let _ = stream.set_write_timeout(Some(IDLE_LIMIT));
    let _ = stream.set_nodelay(true);
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut stream = stream;
    while let Some(request) = read_request(&mut reader) {
        if !send(handler(request), &mut stream, &mut reader, connections, listening) {
            break;
        }
    }
    // Dropping the stream closes it: all of the request was read, so the client
    // sees an orderly end of the connection.
}

/// Writes `reply`; true when the connection serves another request.
fn send(
    reply: Reply,
    stream: &mut TcpStream,
    reader: &mut impl Read,
    connections: Connections,
    listening: &Listening,
) -> bool {
    match reply {
        Reply::Json { status, body } => {
            let close = connections == Connections::OneRequest;
            let written = answer(stream, &status, &body, close);
            if close {
                let _ = stream.shutdown(Shutdown::Write);
            }
            written && !close
        }
        Reply::Close => {
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
        Reply::Hang => {
            if hold(stream, listening) {
                // Waits for the client to give up and close (read gives 0 or fails).
                let mut sink = [0u8; 1024];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
            }
            false
        }
        Reply::StallBody { status, body } => {
            if hold(stream, listening) {
                fault_answers::stall(stream, reader, &status, &body);
            }
            false
        }
        Reply::Huge => {
            fault_answers::huge(stream);
            false
        }
        Reply::CutBody { status, body } => {
            fault_answers::cut(stream, &status, &body);
            false
        }
        Reply::Trickle { status } => {
            fault_answers::trickle(stream, &status);
            false
        }
        Reply::NotHttp => {
            fault_answers::not_http(stream);
            false
        }
        Reply::EndlessHeader => {
            fault_answers::endless_header(stream);
            false
        }
    }
}

/// Keeps a copy of a connection left without an answer, for the drop to shut
/// down; false when the server was dropped meanwhile (after it shut the others down).
fn hold(stream: &TcpStream, listening: &Listening) -> bool {
    if let Ok(copy) = stream.try_clone() {
        lock(&listening.hanging).push(copy);
    }
    !listening.stopped.load(Ordering::SeqCst)
}

/// Writes a whole JSON answer; false when the client is gone.
fn answer(stream: &mut TcpStream, status: &str, body: &str, close: bool) -> bool {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{connection}\r\n",
        body.len()
    );
    let mut message = head.into_bytes();
    message.extend_from_slice(body.as_bytes());
    stream.write_all(&message).and_then(|()| stream.flush()).is_ok()
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
    let length = match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        Some((_, v)) => v.parse::<usize>().ok()?,
        None => 0,
    };
    if length > MAX_BODY {
        return None;
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn read_line(reader: &mut impl BufRead, head_size: &mut usize) -> Option<String> {
    let mut line = Vec::new();
    let n = Read::take(&mut *reader, (MAX_HEAD - *head_size) as u64).read_until(b'\n', &mut line).ok()?;
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

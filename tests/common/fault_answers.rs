//! Answers that break HTTP half-way, which fake_http.rs writes for a fake (push
//! provider, gateway) that plays a peer failing after it started to answer: a
//! body far too long, a body cut off by a closed connection, a body that stops
//! coming.
//!
//! Each writes the status line and headers at once, so the client has a
//! response in hand when the body goes wrong.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

/// The size a "huge" answer announces and sends: far past what a client should buffer.
pub const HUGE: usize = 4 * 1024 * 1024;

fn head(stream: &mut TcpStream, status: &str, length: usize) -> bool {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).is_ok() && stream.flush().is_ok()
}

/// 200 with a JSON-looking body of [`HUGE`] bytes; stops when the client hangs up.
pub fn huge(stream: &mut TcpStream) {
    if !head(stream, "200 OK", HUGE) {
        return;
    }
    let chunk = [b' '; 64 * 1024];
    let mut sent = 0;
    // A JSON string opened and never closed, padded: nothing of it is a valid answer.
    if stream.write_all(b"{\"id\": \"").is_err() {
        return;
    }
    sent += 8;
    while sent < HUGE {
        let n = chunk.len().min(HUGE - sent);
        if stream.write_all(&chunk[..n]).is_err() {
            return;
        }
        sent += n;
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// `status` with `body` announced whole but only its first half sent, then the
/// connection closed.
pub fn cut(stream: &mut TcpStream, status: &str, body: &str) {
    if head(stream, status, body.len()) {
        let _ = stream.write_all(&body.as_bytes()[..body.len() / 2]);
        let _ = stream.flush();
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Like [`cut`], but the connection stays open and silent until the client
/// closes it (read gives 0 or fails): the rest of the body never comes.
pub fn stall(stream: &mut TcpStream, reader: &mut impl Read, status: &str, body: &str) {
    if head(stream, status, body.len()) {
        let _ = stream.write_all(&body.as_bytes()[..body.len() / 2]);
        let _ = stream.flush();
    }
    let mut sink = [0u8; 1024];
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
}

/// `status` with a long body announced, then sent one byte every 200 ms (minutes in
/// all): each read gets something, so only a bound on the whole call ends it.
pub fn trickle(stream: &mut TcpStream, status: &str) {
    let body = format!("{{\"id\": \"{}\"}}", "x".repeat(1000));
    if !head(stream, status, body.len()) {
        return;
    }
    for byte in body.as_bytes() {
        if stream.write_all(&[*byte]).is_err() || stream.flush().is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Not HTTP at all: another protocol's banner and some binary, then the close.
pub fn not_http(stream: &mut TcpStream) {
    let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n\x00\x01\xff\xfe garbage\r\n\r\n");
    let _ = stream.shutdown(Shutdown::Both);
}

/// A 200 whose first header never ends: header bytes until the client hangs up
/// (or 64 MiB), as fast as it reads them.
pub fn endless_header(stream: &mut TcpStream) {
    if stream.write_all(b"HTTP/1.1 200 OK\r\nX-Padding: ").is_err() {
        return;
    }
    let chunk = [b'a'; 64 * 1024];
    for _ in 0..1024 {
        if stream.write_all(&chunk).is_err() {
            return;
        }
    }
}

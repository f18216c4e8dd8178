//! The HTTP/1.1 both fakes (gateway, push provider) speak, written by hand:
//! read one request, record it, answer and close.

use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

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
}

/// Bounds a connection whose client neither sends nor closes, so that no
/// thread waits forever.
pub const IDLE_LIMIT: Duration = Duration::from_secs(60);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

pub fn answer(stream: &mut TcpStream, status: &str, body: &str) {
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
pub fn read_request(reader: &mut impl BufRead) -> Option<Recorded> {
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

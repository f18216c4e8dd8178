//! What the push provider and the SMS/e-mail gateway answer: raw HTTP responses
//! parsed by ureq (status line, headers, chunked or sized body) and judged by
//! the module, without a network: the agent is the clients' own, with a
//! connection that replays the bytes instead of a socket.

use std::net::SocketAddr;
use std::time::Duration;

use ureq::tls::RootCerts;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport};

use super::input::Input;
use super::one_log_line;
use crate::channel::gateway::{judge_answer, SendError};
use crate::channel::http::{self, Pool, Response};
use crate::channel::push::{encode_segment, parse_answer, read_answer, PushError};

/// The reasons `parse_answer` gives: fixed words, never a quote of the answer.
const BAD_ANSWER_REASONS: &[&str] = &[
    "it is not JSON",
    "it is not a JSON object",
    "it has no id",
    "its id is not a string",
    "its id is empty",
    "its id is too long",
    "it has no status",
    "its status is not a string",
    "its status is not one of pending, approved, denied, expired",
];

/// First byte: which call (create, status, cancel); the rest: the raw answer.
pub fn push_answer(data: &[u8]) {
    let mut input = Input::new(data);
    let call = input.byte() % 3;
    let expected: &[u16] = match call {
        0 => &[200, 201],
        1 => &[200],
        _ => &[200, 204],
    };
    let Some(response) = parse_response(input.rest()) else { return };
    let code = response.status().as_u16();
    let body = match read_answer(response, expected) {
        Ok(body) => {
            assert!(expected.contains(&code));
            body
        }
        Err(e) => {
            match &e {
                PushError::Status(c) => assert!(*c == code && !expected.contains(c)),
                PushError::BadAnswer(reason) => assert_eq!(reason, "it is too long"),
                PushError::Timeout | PushError::Unreachable(_) => assert!(expected.contains(&code)),
                PushError::AllDown => panic!("one answer is not every provider: {e}"),
            }
            assert!(one_log_line(&e.to_string()));
            return;
        }
    };
    if call == 2 {
        return; // a cancel's body is not read
    }
    match parse_answer(&body) {
        Ok((id, status)) => {
            assert!(!id.is_empty() && id.len() <= 512);
            let value: serde_json::Value = serde_json::from_slice(&body).expect("accepted JSON");
            assert_eq!(value["id"].as_str(), Some(id.as_str()));
            assert_eq!(value["status"].as_str(), Some(status.as_str()));
            check_segment(&id);
        }
        Err(PushError::BadAnswer(reason)) => {
            assert!(BAD_ANSWER_REASONS.contains(&reason.as_str()), "{reason:?}")
        }
        Err(e) => panic!("a body is a bad answer or a good one, not {e:?}"),
    }
}

/// A provider's id goes into the next URL as one path segment: unreserved
/// characters and %XX only, and it decodes back to the id.
fn check_segment(id: &str) {
    let segment = encode_segment(id);
    let mut decoded = Vec::new();
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: Vec<u8> = bytes.by_ref().take(2).collect();
            assert!(hex.len() == 2 && hex.iter().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)));
            let text = std::str::from_utf8(&hex).unwrap();
            decoded.push(u8::from_str_radix(text, 16).unwrap());
        } else {
            assert!(b.is_ascii_alphanumeric() || b"-._~".contains(&b), "{segment:?}");
            decoded.push(b);
        }
    }
    assert_eq!(decoded, id.as_bytes());
}

/// The raw answer to a send.
pub fn gateway_answer(data: &[u8]) {
    let Some(response) = parse_response(data) else { return };
    let code = response.status().as_u16();
    let sent = (200..300).contains(&code);
    match judge_answer(response) {
        Ok(()) => assert!(sent, "only a 2xx is sent, not {code}"),
        Err(SendError::Status(c)) => assert!(c == code && !sent),
        Err(e @ (SendError::Timeout | SendError::Unreachable(_))) => {
            assert!(sent, "a {code} is judged by its status: {e}");
            assert!(one_log_line(&e.to_string()));
        }
        Err(SendError::Template(_)) => panic!("an answer is no template"),
        Err(SendError::Refused(_)) => panic!("an HTTP answer is no mail server's refusal"),
    }
}

/// Parses a raw answer as the clients' agent does one read from a connection:
/// None when ureq refuses its status line or headers. (ureq 2 panicked on a
/// header line without a colon, so such answers were not fuzzed; ureq 3 refuses
/// them, and they are fuzzed like any other.)
fn parse_response(bytes: &[u8]) -> Option<Response> {
    let config = http::config(Duration::from_secs(5), RootCerts::from(Vec::new()), Pool::new(1, false));
    let agent = ureq::Agent::with_parts(config, Replay(bytes.to_vec()), Loopback);
    agent.get("http://127.0.0.1/").call().ok()
}

/// A connector whose every connection answers these bytes, then ends.
#[derive(Debug)]
struct Replay(Vec<u8>);

impl Connector for Replay {
    type Out = Replayed;

    fn connect(&self, details: &ConnectionDetails, _: Option<()>) -> Result<Option<Replayed>, ureq::Error> {
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Replayed { buffers, answer: self.0.clone(), read: 0 }))
    }
}

/// One connection of [`Replay`]: what is sent is dropped, the answer is read
/// as it would be from a socket, and its end is the connection closing.
#[derive(Debug)]
struct Replayed {
    buffers: LazyBuffers,
    answer: Vec<u8>,
    read: usize,
}

impl Transport for Replayed {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), ureq::Error> {
        Ok(())
    }

    fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
        let input = self.buffers.input_append_buf();
        let n = input.len().min(self.answer.len() - self.read);
        input[..n].copy_from_slice(&self.answer[self.read..self.read + n]);
        self.read += n;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        false
    }
}

/// Every name is 127.0.0.1, at once: no lookup, and no thread for it.
#[derive(Debug)]
struct Loopback;

impl Resolver for Loopback {
    fn resolve(
        &self,
        _: &ureq::http::Uri,
        _: &ureq::config::Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::from(([127, 0, 0, 1], 80)));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_as_from_a_socket() {
        let body = |bytes: &[u8]| parse_response(bytes).map(|r| http::read_body(r, 100).map(|b| b.unwrap()));
        assert_eq!(body(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), Some(Ok(b"ok".to_vec())));
        let chunked = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(body(chunked), Some(Ok(b"ok".to_vec())));
        assert_eq!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").map(|r| r.status().as_u16()), Some(404));
        // Cut short: the status and headers parse, the body read fails.
        assert!(matches!(body(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok"), Some(Err(_))));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding\r\n\r\n").is_none());
        assert!(parse_response(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").is_none());
    }
}

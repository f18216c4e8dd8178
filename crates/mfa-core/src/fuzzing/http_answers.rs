//! What the push provider and the SMS/e-mail gateway answer: raw HTTP responses
//! parsed by ureq (status line, headers, chunked or sized body) and judged by
//! the module, without a network.

use super::input::Input;
use super::one_log_line;
use crate::channel::gateway::{judge_answer, SendError};
use crate::channel::http::contain_panic;
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
    let code = response.status();
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
    let code = response.status();
    let sent = (200..300).contains(&code);
    match judge_answer(response) {
        Ok(()) => assert!(sent, "only a 2xx is sent, not {code}"),
        Err(SendError::Status(c)) => assert!(c == code && !sent),
        Err(e @ (SendError::Timeout | SendError::Unreachable(_))) => {
            assert!(sent, "a {code} is judged by its status: {e}");
            assert!(one_log_line(&e.to_string()));
        }
        Err(SendError::Template(_)) => panic!("an answer is no template"),
    }
}

/// Parses a raw answer as ureq does one read from a connection.
///
/// An answer with a header line that has no colon (a bare `Transfer-Encoding`)
/// makes ureq 2.12.1 panic; the clients contain that panic (`http::contain_panic`),
/// but libFuzzer's panic hook aborts on any panic, contained or not. So such an
/// answer is checked here only under `cargo test` (the regressions), not fuzzed.
#[allow(unexpected_cfgs)] // cargo-fuzz builds with --cfg fuzzing
fn parse_response(bytes: &[u8]) -> Option<ureq::Response> {
    let text = String::from_utf8_lossy(bytes);
    if has_header_without_colon(&text) {
        if !cfg!(fuzzing) {
            // Parsed, refused, or a contained panic: never a panic that escapes.
            let _ = contain_panic(|| text.parse::<ureq::Response>().is_ok());
        }
        return None;
    }
    text.parse().ok()
}

/// Whether a header line (after the status line, before the empty line) is a
/// bare name: RFC 9110 token characters only, no colon.
fn has_header_without_colon(text: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    text.split('\n')
        .skip(1)
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .any(|line| line.bytes().all(token))
}

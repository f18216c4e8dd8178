//! A raw RADIUS client for the tests: Access-Requests built byte by byte, so
//! that a test can send what radclient refuses to (binary values, duplicated
//! attributes, bad lengths, a broken Message-Authenticator).
//!
//! - RFC 2865 §3: the Request Authenticator is 16 random bytes; the answer's
//!   Response Authenticator is checked (MD5 of the answer with the request's
//!   authenticator in its place, then the secret).
//! - RFC 2865 §5.2: User-Password is hidden with MD5 chained over 16-byte blocks.
//! - RFC 3579 §3.2: Message-Authenticator is HMAC-MD5 of the packet with the
//!   attribute's value zeroed.
//!
//! One UDP socket per client; a request nobody answers within the timeout is
//! reported as `None` (FreeRADIUS drops a packet it finds malformed).
#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCESS_CHALLENGE: u8 = 11;

pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const NAS_PORT: u8 = 5;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;

/// How a packet's Message-Authenticator is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageAuth {
    None,
    Right,
    /// Present, with one bit of the right value flipped.
    Wrong,
}

/// What goes on the wire for one attribute.
#[derive(Clone, Debug)]
enum Value {
    /// Sent as given.
    Plain(Vec<u8>),
    /// A password, hidden per RFC 2865 §5.2 when the packet is encoded.
    Hidden(Vec<u8>),
    /// A header that lies: this length byte, followed by these bytes.
    LengthByte(u8, Vec<u8>),
}

/// An Access-Request under construction.
#[derive(Clone, Debug)]
pub struct Request {
    attrs: Vec<(u8, Value)>,
    message_auth: MessageAuth,
    /// Bytes appended after the attributes, counted in the header's length.
    trailing: Vec<u8>,
    /// Overrides the header's length field.
    length_field: Option<u16>,
}

impl Default for Request {
    fn default() -> Self {
        Self::new()
    }
}

impl Request {
    pub fn new() -> Request {
        Request { attrs: Vec::new(), message_auth: MessageAuth::None, trailing: Vec::new(), length_field: None }
    }

    /// Adds an attribute as given; several of one type are sent in order.
    pub fn attr(mut self, kind: u8, value: &[u8]) -> Request {
        self.attrs.push((kind, Value::Plain(value.to_vec())));
        self
    }

    pub fn user(self, name: &str) -> Request {
        self.attr(USER_NAME, name.as_bytes())
    }

    /// User-Password, hidden with the secret and this packet's authenticator.
    pub fn password(mut self, password: &[u8]) -> Request {
        self.attrs.push((USER_PASSWORD, Value::Hidden(password.to_vec())));
        self
    }

    pub fn state(self, state: &[u8]) -> Request {
        self.attr(STATE, state)
    }

    /// An attribute whose length byte says `length` whatever the value's size.
    pub fn bad_length(mut self, kind: u8, length: u8, value: &[u8]) -> Request {
        self.attrs.push((kind, Value::LengthByte(length, value.to_vec())));
        self
    }

    pub fn message_authenticator(mut self, how: MessageAuth) -> Request {
        self.message_auth = how;
        self
    }

    pub fn trailing(mut self, bytes: &[u8]) -> Request {
        self.trailing = bytes.to_vec();
        self
    }

    pub fn length_field(mut self, length: u16) -> Request {
        self.length_field = Some(length);
        self
    }

    /// The packet's bytes for `id`, `authenticator` and `secret`.
    pub fn encode(&self, id: u8, authenticator: &[u8; 16], secret: &[u8]) -> Vec<u8> {
        let mut packet = vec![ACCESS_REQUEST, id, 0, 0];
        packet.extend_from_slice(authenticator);
        let mut message_auth_at = None;
        if self.message_auth != MessageAuth::None {
            // First, as RFC 3579 recommends; zeroed while the HMAC is computed.
            message_auth_at = Some(packet.len() + 2);
            packet.extend_from_slice(&[MESSAGE_AUTHENTICATOR, 18]);
            packet.extend_from_slice(&[0u8; 16]);
        }
        for (kind, value) in &self.attrs {
            let (length, bytes) = match value {
                Value::Plain(v) => (v.len() + 2, v.clone()),
                Value::Hidden(p) => {
                    let hidden = hide_password(p, authenticator, secret);
                    (hidden.len() + 2, hidden)
                }
                Value::LengthByte(length, v) => (usize::from(*length), v.clone()),
            };
            packet.push(*kind);
            packet.push(u8::try_from(length).expect("an attribute holds at most 253 bytes"));
            packet.extend_from_slice(&bytes);
        }
        packet.extend_from_slice(&self.trailing);
        let length = self.length_field.unwrap_or(u16::try_from(packet.len()).expect("a packet fits 65535 bytes"));
        packet[2..4].copy_from_slice(&length.to_be_bytes());
        if let Some(at) = message_auth_at {
            let mut mac = Hmac::<Md5>::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(&packet);
            let mut value: [u8; 16] = mac.finalize().into_bytes().into();
            if self.message_auth == MessageAuth::Wrong {
                value[0] ^= 1;
            }
            packet[at..at + 16].copy_from_slice(&value);
        }
        packet
    }
}

/// RFC 2865 §5.2: the password padded with zeros to a multiple of 16 bytes, each
/// block XORed with MD5(secret + the previous ciphertext block, or the authenticator).
pub fn hide_password(password: &[u8], authenticator: &[u8; 16], secret: &[u8]) -> Vec<u8> {
    let mut padded = password.to_vec();
    let blocks = password.len().div_ceil(16).max(1);
    padded.resize(blocks * 16, 0);
    let mut previous: Vec<u8> = authenticator.to_vec();
    for block in padded.chunks_mut(16) {
        let mut md5 = Md5::new();
        md5.update(secret);
        md5.update(&previous);
        let pad = md5.finalize();
        for (byte, key) in block.iter_mut().zip(pad.iter()) {
            *byte ^= key;
        }
        previous = block.to_vec();
    }
    padded
}

/// An answer from the server.
#[derive(Clone, Debug)]
pub struct Reply {
    pub code: u8,
    pub attrs: Vec<(u8, Vec<u8>)>,
}

impl Reply {
    pub fn is_accept(&self) -> bool {
        self.code == ACCESS_ACCEPT
    }
    pub fn is_reject(&self) -> bool {
        self.code == ACCESS_REJECT
    }
    pub fn is_challenge(&self) -> bool {
        self.code == ACCESS_CHALLENGE
    }
    pub fn get(&self, kind: u8) -> Option<&[u8]> {
        self.attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.as_slice())
    }
    /// Every Reply-Message, in order.
    pub fn messages(&self) -> Vec<String> {
        self.attrs
            .iter()
            .filter(|(k, _)| *k == REPLY_MESSAGE)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
    /// The lines of every Reply-Message (a menu's are joined by newlines in one).
    pub fn lines(&self) -> Vec<String> {
        self.messages().iter().flat_map(|message| message.split('\n')).map(str::to_string).collect()
    }
    pub fn message(&self) -> Option<String> {
        self.messages().into_iter().next()
    }
    pub fn state(&self) -> Option<&[u8]> {
        self.get(STATE)
    }
}

/// Talks to one server from one UDP socket.
pub struct Client {
    socket: UdpSocket,
    secret: Vec<u8>,
    next_id: u8,
}

impl Client {
    pub fn new(port: u16, secret: &str, timeout: Duration) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("cannot bind a UDP socket");
        socket.connect(("127.0.0.1", port)).expect("cannot connect the UDP socket");
        socket.set_read_timeout(Some(timeout)).unwrap();
        let mut first = [0u8; 1];
        getrandom::getrandom(&mut first).unwrap();
        Client { socket, secret: secret.as_bytes().to_vec(), next_id: first[0] }
    }

    /// Sends `request` with a fresh id and authenticator; the answer, or None if
    /// none came within the timeout.
    pub fn send(&mut self, request: &Request) -> Option<Reply> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut authenticator = [0u8; 16];
        getrandom::getrandom(&mut authenticator).unwrap();
        let packet = request.encode(id, &authenticator, &self.secret);
        self.send_bytes(&packet)
    }

    /// Sends bytes as they are (a replay, a malformed packet) and waits for an
    /// answer to their id; the answer must carry a right Response Authenticator.
    pub fn send_bytes(&mut self, packet: &[u8]) -> Option<Reply> {
        assert!(packet.len() >= 20, "a RADIUS packet has a 20-byte header");
        self.socket.send(packet).expect("cannot send a UDP datagram");
        let mut buffer = [0u8; 4096];
        loop {
            let n = match self.socket.recv(&mut buffer) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
                Err(e) => panic!("cannot receive: {e}"),
            };
            // An answer to an earlier request of this socket (one that timed out) is skipped.
            if n < 20 || buffer[1] != packet[1] {
                continue;
            }
            let request_authenticator: [u8; 16] = packet[4..20].try_into().unwrap();
            return Some(decode_reply(&buffer[..n], &request_authenticator, &self.secret));
        }
    }

    /// The packet `send` would send, for a test that sends it twice.
    pub fn encode(&mut self, request: &Request) -> Vec<u8> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut authenticator = [0u8; 16];
        getrandom::getrandom(&mut authenticator).unwrap();
        request.encode(id, &authenticator, &self.secret)
    }
}

/// Parses an answer, checking its length and Response Authenticator.
fn decode_reply(bytes: &[u8], request_authenticator: &[u8; 16], secret: &[u8]) -> Reply {
    let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    assert!(length >= 20 && length <= bytes.len(), "answer with a bad length field");
    let bytes = &bytes[..length];
    let mut md5 = Md5::new();
    md5.update(&bytes[..4]);
    md5.update(request_authenticator);
    md5.update(&bytes[20..]);
    md5.update(secret);
    assert_eq!(md5.finalize().as_slice(), &bytes[4..20], "answer with a wrong Response Authenticator");
    let mut attrs = Vec::new();
    let mut rest = &bytes[20..];
    while !rest.is_empty() {
        assert!(rest.len() >= 2 && usize::from(rest[1]) >= 2 && usize::from(rest[1]) <= rest.len(), "malformed answer");
        let (attr, tail) = rest.split_at(usize::from(rest[1]));
        attrs.push((attr[0], attr[2..].to_vec()));
        rest = tail;
    }
    Reply { code: bytes[0], attrs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiding_matches_rfc_2865_and_round_trips() {
        let auth = [7u8; 16];
        let hidden = hide_password(b"secret", &auth, b"testing123");
        assert_eq!(hidden.len(), 16);
        // Unhiding the first block gives the padded password back.
        let mut md5 = Md5::new();
        md5.update(b"testing123");
        md5.update(auth);
        let pad = md5.finalize();
        let plain: Vec<u8> = hidden.iter().zip(pad.iter()).map(|(c, k)| c ^ k).collect();
        assert_eq!(&plain[..6], b"secret");
        assert!(plain[6..].iter().all(|b| *b == 0));
        assert_eq!(hide_password(&[b'x'; 17], &auth, b"s").len(), 32);
    }
}

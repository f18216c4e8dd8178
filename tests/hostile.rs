//! Hostile packets from an allowed client, sent with the raw sender
//! (tests/common/raw_radius.rs): attributes of every length from 1 to 253 bytes,
//! binary and invalid UTF-8 values, NUL bytes, duplicated attributes, broken
//! States (empty, truncated, a byte longer or shorter, other lengths, every bit
//! flipped, replayed) and malformed packets. Each one must get a Reject, or no
//! answer when FreeRADIUS drops the packet itself (the tests say which); never
//! an Accept. After each batch the next valid login must still be accepted.

mod common;
#[path = "common/raw_radius.rs"]
mod raw_radius;

use std::sync::Mutex;
use std::time::Duration;

use common::{Server, Setup, SECRET};
use mfa_core::factor::otp::{hotp_code, Algorithm};
use raw_radius::*;

/// Every test user has an HOTP token on the RFC seed: each valid login takes the next counter,
/// so the logins after each batch need no new TOTP step.
fn tokens() -> String {
    let users: Vec<String> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|u| {
            format!(r#""{u}": {{"tokens": [{{"serial": "H-{u}", "type": "hotp", "secret": "{}"}}]}}"#, common::SEED_B32)
        })
        .collect();
    format!(r#"{{"users": {{{}}}}}"#, users.join(", "))
}

fn hotp(counter: u64) -> String {
    hotp_code(b"12345678901234567890", counter, 6, Algorithm::Sha1)
}

/// No lockout, so that the hostile wrong codes do not lock the users the valid
/// logins need; one round per dialogue, so that a wrong answer is a Reject, not a
/// new challenge.
const HOSTILE_CONFIG: &str = "lockout {\n max_failures = 0\n}\nmax_rounds = 1";

const USERS: &[(&str, &str)] = &[("alice", "pw-alice"), ("bob", "pw-bob"), ("carol", "pw-carol"), ("dave", "pw-dave")];

/// A server and the next HOTP counter of the user its valid logins use.
struct Target {
    server: Server,
    mode: &'static str,
    user: &'static str,
    counter: u64,
}

impl Target {
    fn start(mode: &'static str, user: &'static str) -> Target {
        let module = common::module_dir().expect("checked by the caller");
        let setup = match mode {
            "otp" => Setup::otp_mode(&tokens()),
            "password+otp" => Setup::password_otp_mode(&tokens(), USERS),
            _ => Setup::challenge_mode(mode, &tokens(), USERS),
        }
        .with(HOSTILE_CONFIG);
        Target { server: Server::start(&module, &setup), mode, user, counter: 0 }
    }

    fn client(&self, timeout: Duration) -> Client {
        Client::new(self.server.port, SECRET, timeout)
    }

    fn password(&self) -> String {
        format!("pw-{}", self.user)
    }

    /// A challenge for the login user (password-then-otp); its State.
    fn challenge(&self) -> Vec<u8> {
        let reply = self
            .client(Duration::from_secs(10))
            .send(&Request::new().user(self.user).password(self.password().as_bytes()));
        let reply = reply.expect("an answer to the password");
        assert!(reply.is_challenge(), "{reply:?}");
        reply.state().unwrap().to_vec()
    }

    /// The next valid login must be accepted: the server is still there and still right.
    fn valid_login(&mut self, after: &str) {
        let code = hotp(self.counter);
        let mut client = self.client(Duration::from_secs(10));
        let request = match self.mode {
            "otp" => Request::new().user(self.user).password(code.as_bytes()),
            "password+otp" => Request::new().user(self.user).password(format!("{},{code}", self.password()).as_bytes()),
            _ => Request::new().user(self.user).password(code.as_bytes()).state(&self.challenge()),
        };
        let reply = client.send(&request);
        assert!(matches!(&reply, Some(r) if r.is_accept()), "{}: valid login after {after}: {reply:?}", self.mode);
        self.counter += 1;
    }
}

/// What a batch got: no Accept ever; the labels of the packets FreeRADIUS dropped.
#[derive(Default)]
struct Batch {
    rejected: usize,
    dropped: Vec<String>,
}

/// Sends every case from 4 clients at once; panics on anything but a Reject or no answer.
fn send_all(target: &Target, cases: Vec<(String, Request)>, timeout: Duration) -> Batch {
    let cases = Mutex::new(cases.into_iter());
    let batch = Mutex::new(Batch::default());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut client = target.client(timeout);
                loop {
                    let next = cases.lock().unwrap().next();
                    let Some((label, request)) = next else { break };
                    let reply = client.send(&request);
                    let mut batch = batch.lock().unwrap();
                    match reply {
                        None => batch.dropped.push(label),
                        Some(r) if r.is_reject() => batch.rejected += 1,
                        Some(r) => panic!("{}: {label}: answered {r:?}", target.mode),
                    }
                }
            });
        }
    });
    batch.into_inner().unwrap()
}

/// n bytes of a pattern that is not valid UTF-8 wherever it is cut (0xFF never is).
fn invalid_utf8(n: usize) -> Vec<u8> {
    (0..n).map(|i| if i % 3 == 0 { 0xFF } else { b'a' }).collect()
}

fn binary(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(37).wrapping_add(salt)).collect()
}

/// A name holding NUL bytes: "alice", NUL, then more, n bytes in all (n >= 1).
fn with_nul(n: usize) -> Vec<u8> {
    let mut v = b"alice\0x\0".to_vec();
    v.resize(n.max(1), 0);
    v.truncate(n);
    v
}

/// Attributes of every length from 1 to 253 bytes, each in a login that must fail.
fn length_cases(target: &Target) -> Vec<(String, Request)> {
    let user = target.user;
    let wrong = match target.mode {
        "password+otp" => format!("{},999999", target.password()),
        // password-then-otp: a wrong password, so that no case gets a challenge.
        "password-then-otp" => "wrong-password".into(),
        _ => "999999".into(),
    };
    let mut cases = Vec::new();
    for n in 1..=253usize {
        let base = || Request::new().user(user).password(wrong.as_bytes());
        cases.push((
            format!("User-Name ascii {n}"),
            Request::new().attr(USER_NAME, &vec![b'a'; n]).password(wrong.as_bytes()),
        ));
        cases.push((
            format!("User-Name binary {n}"),
            Request::new().attr(USER_NAME, &binary(n, 1)).password(wrong.as_bytes()),
        ));
        cases.push((
            format!("User-Name invalid UTF-8 {n}"),
            Request::new().attr(USER_NAME, &invalid_utf8(n)).password(wrong.as_bytes()),
        ));
        cases.push((
            format!("User-Name with NUL {n}"),
            Request::new().attr(USER_NAME, &with_nul(n)).password(wrong.as_bytes()),
        ));
        if n <= 240 {
            // Hidden per RFC 2865: the ciphertext is n rounded up to 16, at most 240 here.
            cases.push((format!("User-Password binary {n}"), Request::new().user(user).password(&binary(n, 2))));
            cases.push((
                format!("User-Password invalid UTF-8 {n}"),
                Request::new().user(user).password(&invalid_utf8(n)),
            ));
            cases.push((format!("User-Password with NUL {n}"), Request::new().user(user).password(&with_nul(n))));
        }
        // A value that is no multiple of 16: not a hidden password at all.
        cases.push((format!("User-Password raw {n}"), Request::new().user(user).attr(USER_PASSWORD, &binary(n, 3))));
        cases.push((format!("State {n}"), base().state(&binary(n, 4))));
        cases.push((format!("Calling-Station-Id {n}"), base().attr(CALLING_STATION_ID, &binary(n, 5))));
        cases.push((format!("NAS-Identifier {n}"), base().attr(NAS_IDENTIFIER, &invalid_utf8(n))));
    }
    cases
}

/// Duplicated attributes, ordered so that the copy a component might wrongly use is the right one.
fn duplicate_cases(target: &Target) -> Vec<(String, Request)> {
    let user = target.user;
    let right = hotp(target.counter);
    let field = |code: &str| match target.mode {
        "password+otp" => format!("{},{code}", target.password()),
        _ => code.to_string(),
    };
    let mut cases = vec![
        (
            "two User-Name: unknown first, the user second, right code".to_string(),
            Request::new().user("mallory").user(user).password(field(&right).as_bytes()),
        ),
        (
            "two User-Name: the user first, another second, wrong code".to_string(),
            Request::new().user(user).user("dave").password(field("999999").as_bytes()),
        ),
        (
            "two User-Password: wrong first, right second".to_string(),
            Request::new().user(user).password(field("999999").as_bytes()).password(field(&right).as_bytes()),
        ),
    ];
    if target.mode == "password-then-otp" {
        let state = target.challenge();
        cases.push((
            "two State: garbage first, a valid one second, right code".into(),
            Request::new().user(user).password(right.as_bytes()).state(&binary(127, 9)).state(&state),
        ));
        let other = target.challenge();
        cases.push((
            "two State: a valid one first, garbage second, wrong code".into(),
            Request::new().user(user).password(b"999999").state(&other).state(&binary(127, 9)),
        ));
    } else {
        // otp mode ignores a State (it never challenges), password+otp refuses one; a wrong
        // code keeps the case a failed login in both.
        cases.push((
            "two State in a mode that never challenges".into(),
            Request::new()
                .user(user)
                .password(field("999999").as_bytes())
                .state(&binary(127, 9))
                .state(&binary(127, 8)),
        ));
    }
    cases
}

/// Broken versions of a valid State, each with the right code.
fn state_cases(target: &Target, valid: &[u8]) -> Vec<(String, Request)> {
    let right = hotp(target.counter);
    let with = |state: &[u8]| Request::new().user(target.user).password(right.as_bytes()).state(state);
    let mut cases = Vec::new();
    for k in 1..valid.len() {
        cases.push((format!("State truncated to {k}"), with(&valid[..k])));
    }
    let mut longer = valid.to_vec();
    longer.push(0);
    cases.push(("State one byte longer".into(), with(&longer)));
    cases.push(("State one byte shorter, cut in front".into(), with(&valid[1..])));
    for n in [1, 16, 24, 64, 126, 128, 200, 253] {
        cases.push((format!("State of another length, {n}"), with(&binary(n, 6))));
    }
    let mut doubled = valid.to_vec();
    doubled.extend_from_slice(&valid[..126]);
    cases.push(("State twice over".into(), with(&doubled)));
    for bit in 0..valid.len() * 8 {
        let mut flipped = valid.to_vec();
        flipped[bit / 8] ^= 1 << (bit % 8);
        cases.push((format!("State bit {bit} flipped"), with(&flipped)));
    }
    cases.push(("State of the login user, sent for another user".into(), {
        Request::new().user("dave").password(right.as_bytes()).state(valid)
    }));
    cases.push(("State sent with another NAS-Identifier".into(), with(valid).attr(NAS_IDENTIFIER, b"other-nas")));
    cases.push(("State sent with a NAS-IP-Address".into(), with(valid).attr(NAS_IP_ADDRESS, &[10, 0, 0, 1])));
    cases
}

/// Packets FreeRADIUS should drop (or answer with a Reject).
fn malformed_cases(target: &Target) -> Vec<(String, Request)> {
    let user = target.user;
    let base = || Request::new().user(user).password(b"999999");
    vec![
        ("attribute length 0".into(), base().bad_length(NAS_IDENTIFIER, 0, b"")),
        ("attribute length 1".into(), base().bad_length(NAS_IDENTIFIER, 1, b"")),
        ("attribute longer than the packet".into(), base().bad_length(NAS_IDENTIFIER, 40, b"short")),
        ("empty User-Name".into(), Request::new().attr(USER_NAME, b"").password(b"999999")),
        ("empty User-Password".into(), Request::new().user(user).attr(USER_PASSWORD, b"")),
        ("empty State".into(), base().state(b"")),
        ("length field beyond the datagram".into(), base().length_field(400)),
        ("length field below the header".into(), base().length_field(19)),
        ("bytes after the length field's end".into(), base().trailing(&[1, 7, b'm', b'a', b'l', b'l', b'y'])),
        ("a truncated attribute header at the end".into(), base().trailing(&[1])),
        ("wrong Message-Authenticator".into(), base().message_authenticator(MessageAuth::Wrong)),
        ("right Message-Authenticator, wrong code".into(), base().message_authenticator(MessageAuth::Right)),
        ("no User-Name".into(), Request::new().password(b"999999")),
        ("no attributes at all".into(), Request::new()),
    ]
}

/// The malformed cases FreeRADIUS 3.2 drops without an answer, sorted.
const DROPPED_BY_FREERADIUS: [&str; 7] = [
    "a truncated attribute header at the end",
    "attribute length 0",
    "attribute length 1",
    "attribute longer than the packet",
    "length field below the header",
    "length field beyond the datagram",
    "wrong Message-Authenticator",
];

fn report(mode: &str, what: &str, batch: &Batch) {
    eprintln!(
        "{mode}: {what}: {} rejected, {} dropped by FreeRADIUS {:?}",
        batch.rejected,
        batch.dropped.len(),
        batch.dropped
    );
}

fn every_batch(mode: &'static str, user: &'static str) {
    let _ = require_module!();
    let mut target = Target::start(mode, user);
    target.valid_login("start-up");

    let batch = send_all(&target, length_cases(&target), Duration::from_secs(3));
    report(mode, "lengths 1 to 253", &batch);
    // Well-formed packets: FreeRADIUS answers all of them, the module refuses them.
    assert!(batch.dropped.is_empty(), "{mode}: well-formed packets went unanswered: {:?}", batch.dropped);
    target.valid_login("attribute lengths");

    let batch = send_all(&target, duplicate_cases(&target), Duration::from_secs(3));
    report(mode, "duplicates", &batch);
    assert!(batch.dropped.is_empty(), "{mode}: {:?}", batch.dropped);
    target.valid_login("duplicated attributes");

    let batch = send_all(&target, malformed_cases(&target), Duration::from_secs(2));
    report(mode, "malformed", &batch);
    // FreeRADIUS drops what breaks RFC 2865's framing or fails the Message-Authenticator,
    // and answers the rest (empty values, a missing User-Name, bytes past the length).
    let mut dropped = batch.dropped.clone();
    dropped.sort();
    assert_eq!(dropped, DROPPED_BY_FREERADIUS, "{mode}");
    target.valid_login("malformed packets");
}

#[test]
fn otp_mode_refuses_every_hostile_packet() {
    every_batch("otp", "bob");
}

#[test]
fn password_otp_mode_refuses_every_hostile_packet() {
    every_batch("password+otp", "carol");
}

#[test]
fn password_then_otp_mode_refuses_every_hostile_packet() {
    every_batch("password-then-otp", "alice");
}

#[test]
fn broken_and_replayed_states_are_refused() {
    let _ = require_module!();
    let mut target = Target::start("password-then-otp", "alice");
    let valid = target.challenge();
    assert_eq!(valid.len(), 127);
    let batch = send_all(&target, state_cases(&target, &valid), Duration::from_secs(3));
    report("password-then-otp", "broken States", &batch);
    assert!(batch.dropped.is_empty(), "{:?}", batch.dropped);
    // None of them used the State up: it still takes the right code, once.
    let mut client = target.client(Duration::from_secs(10));
    let answer = Request::new().user("alice").password(hotp(target.counter).as_bytes()).state(&valid);
    let packet = client.encode(&answer);
    let first = client.send_bytes(&packet).expect("an answer");
    assert!(first.is_accept(), "{first:?}");
    target.counter += 1;
    // The same packet again (same id and authenticator) is a retransmission: FreeRADIUS
    // answers from its cache, the module does not decide twice.
    let accepts_before = target.server.debug_log().matches("accepted: \"alice\"").count();
    let again = client.send_bytes(&packet).expect("the cached answer");
    assert_eq!(again.code, first.code);
    assert_eq!(target.server.debug_log().matches("accepted: \"alice\"").count(), accepts_before);
    // Replayed as a new request (new id), with the used code or the next one: refused.
    for code in [hotp(target.counter - 1), hotp(target.counter)] {
        let replay = client.send(&Request::new().user("alice").password(code.as_bytes()).state(&valid)).unwrap();
        assert!(replay.is_reject(), "{replay:?}");
        assert_eq!(replay.message().as_deref(), Some("This login has expired or is not valid, please start again"));
    }
    // A State answered wrong once (a Reject with max_rounds = 1) is spent too.
    let spent = target.challenge();
    let wrong = client.send(&Request::new().user("alice").password(b"999999").state(&spent)).unwrap();
    assert!(wrong.is_reject(), "{wrong:?}");
    let late =
        client.send(&Request::new().user("alice").password(hotp(target.counter).as_bytes()).state(&spent)).unwrap();
    assert!(late.is_reject(), "{late:?}");
    target.valid_login("broken and replayed States");
}

/// Regression: the code kept from authorize to authenticate went through a C string,
/// which ends at the first NUL, so "password,123456<NUL>junk" was accepted as 123456.
#[test]
fn a_nul_after_the_code_does_not_cut_the_rest_off() {
    let _ = require_module!();
    let mut target = Target::start("password+otp", "carol");
    let mut client = target.client(Duration::from_secs(10));
    let field = format!("pw-carol,{}\0junk", hotp(target.counter));
    let reply = client.send(&Request::new().user("carol").password(field.as_bytes())).expect("an answer");
    assert!(reply.is_reject(), "{reply:?}");
    assert_eq!(reply.message().as_deref(), Some("The code must be 6 digits"));
    // The code was not used up.
    target.valid_login("a code followed by a NUL");
}

/// Regression: password+otp converted the field lossily before handing the password part to
/// the first factor, so any invalid byte matched a stored password holding U+FFFD.
#[test]
fn an_invalid_byte_does_not_stand_for_the_replacement_character() {
    let module = require_module!();
    let setup = Setup::password_otp_mode(&tokens(), &[("carol", "caf\u{FFFD}")]).with(HOSTILE_CONFIG);
    let server = Server::start(&module, &setup);
    let mut client = Client::new(server.port, SECRET, Duration::from_secs(10));
    let field = [b"caf\xfe,".as_slice(), hotp(0).as_bytes()].concat();
    let reply = client.send(&Request::new().user("carol").password(&field)).expect("an answer");
    assert!(reply.is_reject(), "{reply:?}");
    // The stored password itself, sent as UTF-8, still works.
    let field = format!("caf\u{FFFD},{}", hotp(0));
    let reply = client.send(&Request::new().user("carol").password(field.as_bytes())).expect("an answer");
    assert!(reply.is_accept(), "{reply:?}");
}

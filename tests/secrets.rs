//! No secret in the debug log, whatever the flow: otp, password+otp (TOTP, HOTP,
//! CHAP, wrong codes, replay, lockout), password-then-otp with the menu (app,
//! hardware token, SMS and e-mail through the fake gateway, push through the fake
//! provider) and push mode. Searched for: the token seeds (raw, hex, base32), the
//! State key (raw, hex, base64), every code sent by SMS or e-mail, every code and
//! password typed, and the gateway's and provider's Authorization tokens.
//!
//! Two levels:
//! - -xx with `suppress_secrets = yes` (the harness; what the README recommends):
//!   none of them anywhere.
//! - -xxxx, the highest level. FreeRADIUS then ignores suppress_secrets (it only
//!   applies below level 3): it prints User-Password as received and the module's
//!   configuration items marked secret. So the codes and passwords a user typed and
//!   the Authorization tokens may appear, but only in those lines of FreeRADIUS's
//!   own; the seeds, the key and the codes that were sent but never typed appear
//!   nowhere.
//!
//! A 6-digit code counts as found only between non-digits, so that a code is not
//! "found" inside a longer number (a timestamp, an id); the wrong codes are fixed
//! values checked to be wrong.

mod common;
#[path = "common/max_debug.rs"]
mod max_debug;
#[path = "common/raw_radius.rs"]
mod raw_radius;

use std::time::Duration;

use common::fake_gateway::{Behaviour, FakeGateway};
use common::fake_push::{FakePush, PushBehaviour};
use common::{now, Server, Setup};
use max_debug::MaxDebug;
use mfa_core::factor::otp::{hotp_code, Algorithm};
use raw_radius::{Client, Reply, Request};

/// Printable, so that a raw leak would be readable text too.
const TOTP_SEED: &[u8] = b"Zq8-totp-seed-Wx3vN1";
/// Binary.
const HOTP_SEED: &[u8] = &[
    0x8e, 0x01, 0xf7, 0x22, 0x9b, 0x00, 0x5c, 0xd3, 0x41, 0xaa, 0x10, 0xee, 0x7f, 0x63, 0x02, 0xb8, 0x99, 0x31, 0xc4,
    0x5d,
];
const STATE_KEY: [u8; 32] = [
    0x3c, 0x91, 0x0e, 0xd4, 0x77, 0x2a, 0xb5, 0x68, 0x1f, 0xe3, 0x40, 0x9c, 0x5b, 0x06, 0xca, 0x83, 0x2d, 0x74, 0xf1,
    0x18, 0xa9, 0x60, 0x3e, 0xbb, 0x07, 0xd2, 0x95, 0x4f, 0xe8, 0x11, 0x7a, 0xc6,
];
const PASSWORD: &str = "Pw-Tina-4e7Hq";
const SMS_TOKEN: &str = "Bearer sms-tok-9Hf2kQ";
const EMAIL_TOKEN: &str = "Bearer mail-tok-3Lp8vX";
const PUSH_TOKEN: &str = "Bearer push-tok-6Rt1mZ";
/// Wrong codes typed; `wrong()` checks that none is right when typed.
const WRONG: [&str; 7] = ["918273", "564738", "102938", "847561", "293847", "675849", "384756"];

/// Where a secret may show at -xxxx: nowhere, or only in FreeRADIUS's own lines.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Never,
    /// Typed by the user: FreeRADIUS prints User-Password (and pap the password) from level 3.
    Typed,
    /// An Authorization token: FreeRADIUS prints secret configuration items from level 3.
    Config,
}

struct Secret {
    what: String,
    bytes: Vec<u8>,
    kind: Kind,
}

#[derive(Default)]
struct Secrets(Vec<Secret>);

impl Secrets {
    fn add(&mut self, what: &str, bytes: &[u8], kind: Kind) {
        self.0.push(Secret { what: what.into(), bytes: bytes.to_vec(), kind });
    }

    /// A seed or key in every form it could be printed in.
    fn binary(&mut self, what: &str, raw: &[u8]) {
        use data_encoding::{BASE32, BASE32_NOPAD, BASE64, BASE64URL_NOPAD, BASE64_NOPAD, HEXLOWER, HEXUPPER};
        self.add(&format!("{what} raw"), raw, Kind::Never);
        for (form, text) in [
            ("hex", HEXLOWER.encode(raw)),
            ("HEX", HEXUPPER.encode(raw)),
            ("base32", BASE32.encode(raw)),
            ("base32 unpadded", BASE32_NOPAD.encode(raw)),
            ("base32 lower case", BASE32_NOPAD.encode(raw).to_lowercase()),
            ("base64", BASE64.encode(raw)),
            ("base64 unpadded", BASE64_NOPAD.encode(raw)),
            ("base64url", BASE64URL_NOPAD.encode(raw)),
        ] {
            self.add(&format!("{what} {form}"), text.as_bytes(), Kind::Never);
        }
    }

    fn code(&mut self, what: &str, code: &str, kind: Kind) {
        self.add(what, code.as_bytes(), kind);
        if kind == Kind::Never {
            // As the hex of its characters, as a packet dump would show them.
            self.add(
                &format!("{what} as hex"),
                data_encoding::HEXLOWER.encode(code.as_bytes()).as_bytes(),
                Kind::Never,
            );
        }
    }
}

fn totp(step: u64) -> String {
    hotp_code(TOTP_SEED, step, 6, Algorithm::Sha1)
}

fn hotp(counter: u64) -> String {
    hotp_code(HOTP_SEED, counter, 6, Algorithm::Sha1)
}

/// The fixed wrong code `i`, after checking that neither token takes it now.
fn wrong(i: usize) -> &'static str {
    let step = now() / 30;
    let code = WRONG[i];
    assert!(
        (step - 2..=step + 2).all(|s| totp(s) != code) && (0..40).all(|c| hotp(c) != code),
        "{code} is a right code"
    );
    code
}

fn tokens(contacts: bool) -> String {
    let contact = if contacts { r#", "sms": "+4512345612", "email": "tina@example.com""# } else { "" };
    format!(
        r#"{{"users": {{"tina": {{"tokens": [
            {{"serial": "T-tina", "type": "totp", "secret": "{}"}},
            {{"serial": "H-tina", "type": "hotp", "secret": "{}"}}]{contact}}}}}}}"#,
        data_encoding::BASE32.encode(TOTP_SEED),
        data_encoding::BASE32.encode(HOTP_SEED)
    )
}

fn key_file() -> String {
    format!("{}\n", data_encoding::HEXLOWER.encode(&STATE_KEY))
}

const USERS: &[(&str, &str)] = &[("tina", PASSWORD)];

/// A server of the harness, or the same configuration at -xxxx.
struct Run {
    server: Server,
    max: Option<MaxDebug>,
}

impl Run {
    fn start(setup: &Setup, max_level: bool) -> Run {
        let module = common::module_dir().expect("checked by the caller");
        let mut server = Server::start(&module, setup);
        let max = max_level.then(|| MaxDebug::take_over(&mut server));
        Run { server, max }
    }

    fn client(&self) -> Client {
        Client::new(self.server.port, common::SECRET, Duration::from_secs(15))
    }

    fn send(&self, request: &Request) -> Reply {
        self.client().send(request).expect("an answer")
    }

    fn login(&self, password: &str) -> Reply {
        self.send(&Request::new().user("tina").password(password.as_bytes()))
    }

    fn answer(&self, answer: &str, to: &Reply) -> Reply {
        let state = to.state().unwrap_or_else(|| panic!("no State in {to:?}"));
        self.send(&Request::new().user("tina").password(answer.as_bytes()).state(state))
    }

    /// Everything logged: the harness's log (start-up), and the -xxxx one if any.
    fn log(&self) -> Vec<u8> {
        let mut log = std::fs::read(self.server.dir.join("log/debug.log")).unwrap_or_default();
        if let Some(max) = &self.max {
            log.extend(max.bytes());
        }
        log
    }
}

/// otp mode: TOTP, HOTP and CHAP, right, replayed and wrong codes, up to a lockout.
fn otp_flows(max_level: bool, secrets: &mut Secrets) -> Vec<u8> {
    let setup = Setup::otp_mode(&tokens(false)).with("lockout {\n max_failures = 3\n duration = 600\n}");
    let run = Run::start(&setup, max_level);
    common::settle_in_step(8);
    let code = totp(now() / 30);
    secrets.code("TOTP code typed", &code, Kind::Typed);
    assert!(run.login(&code).is_accept());
    assert!(run.login(&code).is_reject(), "replay");
    secrets.code("HOTP code typed", &hotp(0), Kind::Typed);
    assert!(run.login(&hotp(0)).is_accept());
    // CHAP: only MD5(ident, code, challenge) travels; the code itself must appear nowhere.
    let challenge = *b"chap-challenge-1";
    let answer = mfa_core::factor::verify::chap_response(7, &hotp(1), &challenge);
    let mut chap = vec![7u8];
    chap.extend_from_slice(&answer);
    secrets.code("HOTP code answered by CHAP", &hotp(1), Kind::Never);
    let reply = run.send(&Request::new().user("tina").attr(3, &chap).attr(60, &challenge));
    assert!(reply.is_accept(), "{reply:?}");
    for i in 0..3 {
        secrets.code("wrong code typed", wrong(i), Kind::Typed);
        assert!(run.login(wrong(i)).is_reject());
    }
    secrets.code("right code typed while locked", &hotp(2), Kind::Typed);
    let locked = run.login(&hotp(2));
    assert!(locked.message().unwrap_or_default().starts_with("Too many failed attempts"), "{locked:?}");
    run.log()
}

/// password+otp: the password and the code in one field.
fn password_otp_flows(max_level: bool, secrets: &mut Secrets) -> Vec<u8> {
    let run = Run::start(&Setup::password_otp_mode(&tokens(false), USERS), max_level);
    common::settle_in_step(8);
    let code = totp(now() / 30);
    secrets.code("TOTP code typed after the password", &code, Kind::Typed);
    assert!(run.login(&format!("{PASSWORD},{code}")).is_accept());
    secrets.code("wrong code typed after the password", wrong(3), Kind::Typed);
    assert!(run.login(&format!("{PASSWORD},{}", wrong(3))).is_reject());
    run.log()
}

/// The code in the last message a gateway was sent.
fn sent_code(gateway: &FakeGateway) -> String {
    let requests = gateway.requests();
    let body: serde_json::Value = serde_json::from_str(&requests.last().expect("nothing sent").body).unwrap();
    let text = body["text"].as_str().unwrap();
    text.trim_start_matches("Your login code is ").chars().take_while(char::is_ascii_digit).collect()
}

/// password-then-otp: the menu, then the app, the hardware token, SMS, e-mail and push.
fn challenge_flows(max_level: bool, secrets: &mut Secrets) -> Vec<u8> {
    let sms = FakeGateway::start(Behaviour::Accept);
    let email = FakeGateway::start(Behaviour::Accept);
    let push = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let body = r#"'{"to": "{destination}", "text": "{message}"}'"#;
    let setup = Setup::challenge_mode("password-then-otp", &tokens(true), USERS)
        .file("mods-config/mfa/state.key", &key_file())
        .with(&format!(
            "max_rounds = 2\n\
             sms {{\n url = \"{}\"\n authorization = \"{SMS_TOKEN}\"\n body = {body}\n timeout = 2\n}}\n\
             email {{\n url = \"{}\"\n authorization = \"{EMAIL_TOKEN}\"\n body = {body}\n timeout = 2\n}}\n\
             push {{\n url = \"{}\"\n authorization = \"{PUSH_TOKEN}\"\n approval = challenge\n timeout = 2\n}}",
            sms.url(),
            email.url(),
            push.url()
        ));
    let run = Run::start(&setup, max_level);
    common::settle_in_step(10);
    let menu = || {
        let reply = run.login(PASSWORD);
        assert!(reply.is_challenge() && reply.lines().len() == 7, "{reply:?}");
        reply
    };
    // 1 app, 2 hardware token, 3 SMS, 4 e-mail, 5 push.
    let prompt = run.answer("1", &menu());
    let code = totp(now() / 30);
    secrets.code("TOTP code typed in a challenge", &code, Kind::Typed);
    assert!(run.answer(&code, &prompt).is_accept());

    let prompt = run.answer("2", &menu());
    secrets.code("HOTP code typed in a challenge", &hotp(0), Kind::Typed);
    assert!(run.answer(&hotp(0), &prompt).is_accept());

    // SMS: a wrong answer, then the code sent.
    let prompt = run.answer("3", &menu());
    let sent = sent_code(&sms);
    secrets.code("wrong answer to an SMS code", wrong(4), Kind::Typed);
    let again = run.answer(wrong(4), &prompt);
    assert!(again.is_challenge(), "{again:?}");
    secrets.code("SMS code typed", &sent, Kind::Typed);
    assert!(run.answer(&sent, &again).is_accept());

    // SMS and e-mail codes sent and never typed.
    run.answer("3", &menu());
    secrets.code("SMS code never typed", &sent_code(&sms), Kind::Never);
    let prompt = run.answer("4", &menu());
    secrets.code("e-mail code never typed", &sent_code(&email), Kind::Never);
    assert!(run.answer(wrong(5), &run.answer(wrong(6), &prompt)).is_reject());
    secrets.code("wrong answers to an e-mail code", wrong(5), Kind::Typed);
    secrets.code("wrong answers to an e-mail code", wrong(6), Kind::Typed);

    let prompt = run.answer("4", &menu());
    let sent = sent_code(&email);
    secrets.code("e-mail code typed", &sent, Kind::Typed);
    assert!(run.answer(&sent, &prompt).is_accept());

    // Push, approved, then OK.
    let prompt = run.answer("5", &menu());
    assert!(run.answer("ok", &prompt).is_accept());
    assert_eq!(sms.requests()[0].header("authorization"), Some(SMS_TOKEN), "the gateway got its token");
    run.log()
}

/// push mode, waiting for the approval.
fn push_flows(max_level: bool) -> Vec<u8> {
    let push = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_millis(300)));
    let setup = Setup::challenge_mode("push", &tokens(false), USERS).with(&format!(
        "push {{\n url = \"{}\"\n authorization = \"{PUSH_TOKEN}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n}}",
        push.url()
    ));
    let run = Run::start(&setup, max_level);
    assert!(run.login(PASSWORD).is_accept());
    run.log()
}

fn every_flow(max_level: bool) -> (Secrets, Vec<u8>) {
    let mut secrets = Secrets::default();
    secrets.binary("TOTP seed", TOTP_SEED);
    secrets.binary("HOTP seed", HOTP_SEED);
    secrets.binary("State key", &STATE_KEY);
    secrets.add("password", PASSWORD.as_bytes(), Kind::Typed);
    for token in [SMS_TOKEN, EMAIL_TOKEN, PUSH_TOKEN] {
        secrets.add("Authorization token", token.as_bytes(), Kind::Config);
        // The token without "Bearer ".
        secrets.add("Authorization token", token.trim_start_matches("Bearer ").as_bytes(), Kind::Config);
    }
    let mut log = otp_flows(max_level, &mut secrets);
    log.extend(password_otp_flows(max_level, &mut secrets));
    log.extend(challenge_flows(max_level, &mut secrets));
    log.extend(push_flows(max_level));
    (secrets, log)
}

/// The lines holding `needle`; a code only where no digit touches it.
fn lines_with<'a>(log: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let is_code = needle.len() <= 10 && needle.iter().all(u8::is_ascii_digit);
    log.split(|b| *b == b'\n')
        .filter(|line| {
            line.windows(needle.len()).enumerate().any(|(at, w)| {
                w == needle
                    && (!is_code
                        || (!line.get(at.wrapping_sub(1)).is_some_and(u8::is_ascii_digit)
                            && !line.get(at + needle.len()).is_some_and(u8::is_ascii_digit)))
            })
        })
        .collect()
}

/// FreeRADIUS's own lines that print secrets at level 3 and above.
fn freeradius_prints_it(line: &str, kind: Kind) -> bool {
    match kind {
        Kind::Never => false,
        Kind::Typed => {
            line.contains("User-Password = \"")
                || line.contains("pap: Login attempt with password")
                || line.contains("pap: Comparing with \"known good\"")
        }
        // The configuration dump: "... : Debug: <tabs>authorization = "..."".
        Kind::Config => {
            line.split_once("Debug:").is_some_and(|(_, item)| item.trim_start().starts_with("authorization = \""))
        }
    }
}

fn no_secret_in(log: &[u8], secrets: &Secrets, max_level: bool) {
    assert!(log.len() > 10_000, "the log is too short to mean anything");
    let mut found = Vec::new();
    for secret in &secrets.0 {
        for line in lines_with(log, &secret.bytes) {
            let line = String::from_utf8_lossy(line);
            if !(max_level && freeradius_prints_it(&line, secret.kind)) {
                found.push(format!("{} ({:?}): {line}", secret.what, secret.kind));
            }
        }
    }
    assert!(found.is_empty(), "secrets in the log:\n{}", found.join("\n"));
}

#[test]
fn no_secret_in_the_debug_log_of_any_flow() {
    let _ = require_module!();
    let (secrets, log) = every_flow(false);
    no_secret_in(&log, &secrets, false);
}

#[test]
fn at_the_highest_debug_level_only_freeradius_prints_what_was_typed() {
    let _ = require_module!();
    let (secrets, log) = every_flow(true);
    no_secret_in(&log, &secrets, true);
    // The level is really above -X's: FreeRADIUS shows the typed code there.
    let typed = secrets.0.iter().find(|s| s.what == "TOTP code typed").unwrap();
    assert!(!lines_with(&log, &typed.bytes).is_empty(), "-xxxx did not print User-Password: not the highest level?");
}

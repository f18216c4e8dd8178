//! Challenge dialogues with an injected clock and fake SMS/e-mail senders.

use super::*;
use crate::channel::gateway::SendError;
use crate::clock::FixedClock;
use crate::config::{RawConfig, RawGateway};
use crate::factor::otp;
use crate::testutil::TempDir;
use std::sync::Mutex as StdMutex;

use super::test_config::{raw_config, SEED, SEED_B32, T};
const NAS: &str = "127.0.0.1||nas-1";

/// Records what would have been sent; fails on demand.
#[derive(Default)]
struct Outbox {
    sent: StdMutex<Vec<(String, String, String)>>,
    fail: StdMutex<bool>,
}

struct FakeSender(Arc<Outbox>);

impl Sender for FakeSender {
    fn send(&self, user: &str, destination: &str, message: &str) -> Result<(), SendError> {
        if *self.0.fail.lock().unwrap() {
            return Err(SendError::Status(500));
        }
        self.0.sent.lock().unwrap().push((user.into(), destination.into(), message.into()));
        Ok(())
    }
}

struct Fixture {
    _dir: TempDir,
    clock: Arc<FixedClock>,
    engine: Engine,
    sms: Arc<Outbox>,
}

fn gateway_items() -> RawGateway {
    RawGateway {
        url: Some("http://127.0.0.1:9/send".into()),
        authorization: None,
        body: Some(r#"{"to": "{destination}", "text": "{message}"}"#.into()),
        message: Some("Your login code is {code} ({correlation})".into()),
        timeout: 5,
        ..RawGateway::default()
    }
}

fn fixture(mode: &str, change: impl FnOnce(&mut RawConfig)) -> Fixture {
    let dir = TempDir::new("dialogue");
    let tokens = format!(
        r#"{{"users": {{
            "alice": {{"tokens": [{{"serial": "T1", "type": "totp", "secret": "{SEED_B32}"}}], "sms": "+4512345612"}},
            "bob": {{"tokens": [{{"serial": "T2", "type": "totp", "secret": "{SEED_B32}"}}]}},
            "carol": {{"sms": "+4587654321"}}
        }}}}"#
    );
    dir.file("tokens.json", &tokens, 0o640);
    let mut raw = RawConfig { sms: gateway_items(), ..raw_config(dir.path(), mode) };
    raw.lockout.max_failures = 5;
    change(&mut raw);
    let clock = Arc::new(FixedClock::new(T));
    let sms = Arc::new(Outbox::default());
    let engine = Engine::with_senders(
        "mfa",
        Config::from_raw(&raw).unwrap(),
        clock.clone(),
        Some(Box::new(FakeSender(sms.clone()))),
        None,
    )
    .unwrap();
    Fixture { _dir: dir, clock, engine, sms }
}

fn totp(time: u64) -> String {
    otp::hotp_code(SEED, time / 30, 6, otp::Algorithm::Sha1)
}

impl Fixture {
    /// The first factor has passed: authenticate with no State.
    fn start(&self, user: &str) -> AuthenticateOutput {
        self.engine.authenticate(AuthenticateInput {
            user_name: Some(user.as_bytes()),
            password: Some(b"the password"),
            nas: NAS.into(),
            ..AuthenticateInput::default()
        })
    }

    fn answer_from(&self, user: &str, answer: &str, state: &[u8], nas: &str) -> AuthenticateOutput {
        self.engine.authenticate(AuthenticateInput {
            user_name: Some(user.as_bytes()),
            password: Some(answer.as_bytes()),
            state: Some(state),
            nas: nas.into(),
            ..AuthenticateInput::default()
        })
    }

    fn answer(&self, user: &str, answer: &str, state: &[u8]) -> AuthenticateOutput {
        self.answer_from(user, answer, state, NAS)
    }

    fn last_sms_code(&self) -> String {
        let sent = self.sms.sent.lock().unwrap();
        let (_, _, message) = sent.last().expect("nothing sent");
        message.trim_start_matches("Your login code is ").chars().take(6).collect()
    }
}

fn state_of(out: &AuthenticateOutput) -> Vec<u8> {
    assert_eq!(out.outcome, Some(Outcome::Challenge), "{out:?}");
    out.challenge_state.clone().expect("a challenge carries a State")
}

#[test]
fn one_method_prompts_for_the_code_and_accepts_it_once() {
    let f = fixture("password-then-otp", |_| {});
    let first = f.start("bob");
    assert_eq!(first.reply_messages, vec!["Enter OTP:"]);
    let state = state_of(&first);
    assert!(state.len() <= 253);
    assert_eq!(f.answer("bob", &totp(T), &state).outcome, Some(Outcome::Ok));
    assert_eq!(f.answer("bob", &totp(T + 30), &state).outcome, Some(Outcome::Reject), "single use");
}

#[test]
fn the_menu_leads_to_an_sms_code() {
    let f = fixture("password-then-otp", |_| {});
    let menu = f.start("alice");
    assert_eq!(
        menu.reply_messages,
        vec!["Choose how to confirm this login:\n1. Authenticator app\n2. SMS to +45 **** **12\nEnter 1 to 2:"],
        "the whole menu in one Reply-Message"
    );
    let prompt = f.answer("alice", "2", &state_of(&menu));
    let state = state_of(&prompt);
    let sent = f.sms.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, "+4512345612");
    let code = f.last_sms_code();
    assert!(!prompt.log.iter().any(|l| l.text.contains(&code)), "the code is not logged");
    assert!(!String::from_utf8_lossy(&state).contains(&code), "the State does not show the code");
    assert_eq!(f.answer("alice", &code, &state).outcome, Some(Outcome::Ok));
}

#[test]
fn choosing_the_app_from_the_menu() {
    let f = fixture("password-then-otp", |_| {});
    let menu = f.start("alice");
    let prompt = f.answer("alice", " 1 ", &state_of(&menu));
    assert_eq!(prompt.reply_messages, vec!["Enter OTP:"]);
    assert_eq!(f.answer("alice", &totp(T), &state_of(&prompt)).outcome, Some(Outcome::Ok));
}

#[test]
fn sms_only_user_gets_the_code_without_a_menu() {
    let f = fixture("password-then-otp", |_| {});
    let prompt = f.start("carol");
    assert!(prompt.reply_messages[0].starts_with("Enter the code sent to +45 **** **21 ("), "{prompt:?}");
    let code = f.last_sms_code();
    assert_eq!(f.answer("carol", &code, &state_of(&prompt)).outcome, Some(Outcome::Ok));
}

#[test]
fn a_failing_gateway_rejects_with_a_reason() {
    let f = fixture("password-then-otp", |_| {});
    *f.sms.fail.lock().unwrap() = true;
    let out = f.start("carol");
    assert_eq!(out.outcome, Some(Outcome::Reject));
    assert_eq!(out.reply_messages, vec!["The code could not be sent, try again later"]);
    assert!(out.log.iter().any(|l| l.text.contains("HTTP 500") || l.text.contains("500")));
}

#[test]
fn a_sent_code_expires_with_its_state() {
    let f = fixture("password-then-otp", |r| r.code_lifetime = 60);
    let prompt = f.start("carol");
    let code = f.last_sms_code();
    f.clock.advance(61);
    let out = f.answer("carol", &code, &state_of(&prompt));
    assert_eq!(out.outcome, Some(Outcome::Reject));
    assert!(out.log.iter().any(|l| l.text.contains("expired")), "{out:?}");
}

#[test]
fn an_app_challenge_expires() {
    let f = fixture("password-then-otp", |r| r.challenge_timeout = 30);
    let state = state_of(&f.start("bob"));
    f.clock.advance(31);
    assert_eq!(f.answer("bob", &totp(T + 31), &state).outcome, Some(Outcome::Reject));
}

#[test]
fn wrong_answers_are_bounded_and_counted() {
    let f = fixture("password-then-otp", |r| r.max_rounds = 2);
    let state = state_of(&f.start("bob"));
    let again = f.answer("bob", "000000", &state);
    assert_eq!(again.reply_messages, vec!["Wrong code, try again:", "Enter OTP:"]);
    let end = f.answer("bob", "000000", &state_of(&again));
    assert_eq!(end.outcome, Some(Outcome::Reject));
    assert_eq!(f.engine.store().cached_lock("bob").failures, 2);
}

#[test]
fn invalid_menu_choices_are_bounded() {
    let f = fixture("password-then-otp", |r| r.max_rounds = 2);
    let again = f.answer("alice", "x", &state_of(&f.start("alice")));
    assert!(again.reply_messages[0].starts_with("Enter a number from 1 to 2:\nChoose how"), "{again:?}");
    let end = f.answer("alice", "3", &state_of(&again));
    assert_eq!(end.outcome, Some(Outcome::Reject));
}

#[test]
fn a_state_is_bound_to_user_and_nas() {
    let f = fixture("password-then-otp", |_| {});
    let state = state_of(&f.start("bob"));
    let other_user = f.answer("alice", &totp(T), &state);
    assert_eq!(other_user.outcome, Some(Outcome::Reject));
    assert!(other_user.log.iter().any(|l| l.text.contains("another user")), "{other_user:?}");
    let other_nas = f.answer_from("bob", &totp(T), &state, "10.0.0.9||nas-2");
    assert_eq!(other_nas.outcome, Some(Outcome::Reject));
    assert!(other_nas.log.iter().any(|l| l.text.contains("another NAS")), "{other_nas:?}");
    // A refused answer does not spend the State: the right user on the right NAS still can.
    assert_eq!(f.answer("bob", &totp(T), &state).outcome, Some(Outcome::Ok));
}

#[test]
fn auto_mode_checks_a_joined_code_at_once() {
    let f = fixture("auto", |_| {});
    let out = f.engine.authorize(AuthorizeInput {
        user_name: Some(b"bob"),
        password: Some(format!("secret,{}", totp(T)).as_bytes()),
        auth_type: None,
        has_state: false,
        eap: false,
        quiet: false,
    });
    assert_eq!(out.password.as_deref(), Some("secret"));
    let code = out.stashed_code.clone().unwrap();
    let auth = f.engine.authenticate(AuthenticateInput {
        user_name: Some(b"bob"),
        stashed_code: Some(code),
        nas: NAS.into(),
        ..AuthenticateInput::default()
    });
    assert_eq!(auth.outcome, Some(Outcome::Ok));

    let alone = f.engine.authorize(AuthorizeInput {
        user_name: Some(b"bob"),
        password: Some(b"secret,word"),
        auth_type: None,
        has_state: false,
        eap: false,
        quiet: false,
    });
    assert_eq!(alone.password, None, "no code in the field: the password stays whole");
    assert_eq!(f.start("bob").outcome, Some(Outcome::Challenge));
}

/// Regression: a field that is not UTF-8 was split lossily; now the first factor gets it
/// whole (as it came) and the code is asked for in a challenge.
#[test]
fn auto_mode_leaves_a_field_that_is_not_utf8_whole() {
    let f = fixture("auto", |_| {});
    let field = [b"caf\xfe,".as_slice(), totp(T).as_bytes()].concat();
    let out = f.engine.authorize(AuthorizeInput {
        user_name: Some(b"bob"),
        password: Some(&field),
        auth_type: None,
        has_state: false,
        eap: false,
        quiet: false,
    });
    assert_eq!(out.outcome, Some(Outcome::Updated));
    assert_eq!(out.password, None);
    assert_eq!(out.stashed_code, None);
}

#[test]
fn the_answer_round_skips_the_password_split() {
    let f = fixture("auto", |_| {});
    let out = f.engine.authorize(AuthorizeInput {
        user_name: Some(b"bob"),
        password: Some(b"x,123456"),
        auth_type: None,
        has_state: true,
        eap: false,
        quiet: false,
    });
    assert_eq!(out.password, None);
    assert_eq!(out.stashed_code, None);
    assert!(out.set_auth_type);
}

#[test]
fn a_missing_key_file_is_created_and_a_public_one_refused() {
    let f = fixture("password-then-otp", |_| {});
    let key = f._dir.path().join("state.key");
    assert!(key.is_file());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let raw = RawConfig {
        mode: Some("password-then-otp".into()),
        tokens: Some(f._dir.path().join("tokens.json").display().to_string()),
        state: Some(f._dir.path().join("state.jsonl").display().to_string()),
        state_key: Some(key.display().to_string()),
        challenge_timeout: 120,
        max_rounds: 3,
        code_length: 6,
        code_lifetime: 300,
        ..RawConfig::default()
    };
    let err = Engine::new("mfa", Config::from_raw(&raw).unwrap(), f.clock.clone()).err().unwrap();
    assert_eq!(err.item, "state_key");
}

#[test]
fn auto_mode_code_pattern_is_configurable() {
    let custom = fixture("auto", |r| r.auto_code_pattern = Some("[0-9a-z]{4,8}".into()));
    let default = fixture("auto", |_| {});
    for (f, holds_code) in [(&custom, true), (&default, false)] {
        let out = f.engine.authorize(AuthorizeInput {
            user_name: Some(b"bob"),
            password: Some(b"secret,ab12"),
            auth_type: None,
            has_state: false,
            eap: false,
            quiet: false,
        });
        assert_eq!(out.stashed_code.is_some(), holds_code);
    }
}

#[test]
fn codes_sent_past_the_users_limit_are_refused_and_none_is_sent() {
    let f = fixture("password-then-otp", |r| r.limits.codes_sent = 2);
    for _ in 0..2 {
        assert_eq!(f.start("carol").outcome, Some(Outcome::Challenge));
    }
    let refused = f.start("carol");
    assert_eq!(refused.outcome, Some(Outcome::Reject), "{refused:?}");
    assert!(refused.reply_messages[0].starts_with("Too many approval requests: try again in "), "{refused:?}");
    assert_eq!(f.sms.sent.lock().unwrap().len(), 2, "no third text message");
}

/// A State sent with the name of someone without a second factor is refused as
/// a State that is not ours, not as "not enrolled": the answer must not tell
/// who is enrolled (the site skips the password for a request with a State).
#[test]
fn a_state_under_a_name_without_a_second_factor_is_refused_as_foreign() {
    let f = fixture("password-then-otp", |_| {});
    let state = state_of(&f.start("bob"));
    for user in ["nobody", "bob"] {
        let out = f.answer(user, "123456", if user == "bob" { b"forged".as_slice() } else { &state });
        assert_eq!(out.outcome, Some(Outcome::Reject), "{user}: {out:?}");
        assert_eq!(out.reply_messages, [f.engine.config().messages.bad_state.as_str()], "{user}");
    }
}

/// A wrong code sent by text message counts toward the lockout like a wrong OTP,
/// and the one that locks is counted as a lockout.
#[test]
fn the_wrong_sent_code_that_locks_counts_a_lockout() {
    let f = fixture("password-then-otp", |r| {
        r.max_rounds = 5;
        r.lockout.max_failures = 3;
    });
    let mut state = state_of(&f.start("carol"));
    let code = f.last_sms_code();
    // Another code of the same form: only its first digit differs.
    let wrong = format!("{}{}", (code.as_bytes()[0] - b'0' + 1) % 10, &code[1..]);
    for _ in 0..2 {
        let again = f.answer("carol", &wrong, &state);
        state = state_of(&again);
    }
    let locking = f.answer("carol", &wrong, &state);
    assert_eq!(
        (locking.outcome, locking.tally()),
        (Some(Outcome::Userlock), Tally::Reject { cause: Cause::LockedOut, locks: true }),
        "the third failure locks: {locking:?}"
    );
}

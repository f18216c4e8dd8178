//! Engine decisions with an injected clock and real files in a temp directory.

use super::*;
use crate::clock::FixedClock;
use crate::config::RawConfig;
use crate::factor::otp;
use crate::testutil::TempDir;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::test_config::{raw_config, SEED, SEED_B32, T};

fn tokens_json() -> String {
    format!(
        r#"{{"users": {{
            "alice": {{"tokens": [{{"serial": "T1", "type": "totp", "secret": "{SEED_B32}"}}]}},
            "bob": {{"tokens": [{{"serial": "H1", "type": "hotp", "secret": "{SEED_B32}"}}]}},
            "carol": {{"tokens": [
                {{"serial": "T8", "type": "totp", "secret": "{SEED_B32}", "digits": 8, "algorithm": "SHA256"}},
                {{"serial": "H2", "type": "hotp", "secret": "{SEED_B32}"}}
            ]}}
        }}}}"#
    )
}

struct Fixture {
    dir: TempDir,
    clock: Arc<FixedClock>,
    engine: Engine,
}

/// Mode otp with the detailed messages, which most tests here read (see
/// `before_any_password_unknown_unenrolled_and_locked_users_read_alike` for the default).
fn raw(dir: &Path) -> RawConfig {
    RawConfig { detailed_messages: true, ..raw_config(dir, "otp") }
}

fn fixture_with(change: impl FnOnce(&mut RawConfig)) -> Fixture {
    let dir = TempDir::new("engine");
    dir.file("tokens.json", &tokens_json(), 0o640);
    let mut r = raw(dir.path());
    change(&mut r);
    let clock = Arc::new(FixedClock::new(T));
    let engine = Engine::new("mfa", Config::from_raw(&r).unwrap(), clock.clone()).unwrap();
    Fixture { dir, clock, engine }
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn totp(time: u64) -> String {
    otp::hotp_code(SEED, time / 30, 6, otp::Algorithm::Sha1)
}

fn hotp(counter: u64) -> String {
    otp::hotp_code(SEED, counter, 6, otp::Algorithm::Sha1)
}

impl Fixture {
    fn auth(&self, user: &str, code: &str) -> AuthenticateOutput {
        self.engine.authenticate(AuthenticateInput {
            user_name: Some(user.as_bytes()),
            password: Some(code.as_bytes()),
            ..AuthenticateInput::default()
        })
    }

    fn authorize(&self, user: &[u8], password: &str) -> AuthorizeOutput {
        self.engine.authorize(AuthorizeInput {
            user_name: Some(user),
            password: Some(password.as_bytes()),
            auth_type: None,
            has_state: false,
            eap: false,
            quiet: false,
        })
    }

    fn reopen(&self) -> Engine {
        Engine::new("mfa", Config::from_raw(&raw(self.dir.path())).unwrap(), self.clock.clone()).unwrap()
    }
}

impl AuthenticateOutput {
    fn message(&self) -> Option<&str> {
        self.reply_messages.first().map(String::as_str)
    }
}

fn logged(out: &[LogLine], needle: &str) -> bool {
    out.iter().any(|l| l.text.contains(needle))
}

#[test]
fn totp_accepts_once_then_refuses_replay() {
    let f = fixture();
    let code = totp(T);
    assert_eq!(f.auth("alice", &code).outcome, Some(Outcome::Ok));
    let again = f.auth("alice", &code);
    assert_eq!(again.outcome, Some(Outcome::Reject));
    assert_eq!(again.message(), Some("Wrong or already used code"));
    assert!(logged(&again.log, "replayed"));
    // An older step than the accepted one is refused too.
    assert_eq!(f.auth("alice", &totp(T - 30)).outcome, Some(Outcome::Reject));
    // The next step is fine.
    f.clock.advance(30);
    assert_eq!(f.auth("alice", &totp(T + 30)).outcome, Some(Outcome::Ok));
}

#[test]
fn totp_window_is_honoured() {
    let f = fixture();
    assert_eq!(f.auth("alice", &totp(T - 60)).outcome, Some(Outcome::Reject), "two steps back");
    assert_eq!(f.auth("alice", &totp(T + 30)).outcome, Some(Outcome::Ok), "one step ahead");
    let g = fixture_with(|r| r.totp_window = 0);
    assert_eq!(g.auth("alice", &totp(T - 30)).outcome, Some(Outcome::Reject));
    assert_eq!(g.auth("alice", &totp(T)).outcome, Some(Outcome::Ok));
}

#[test]
fn hotp_moves_the_counter_past_the_accepted_code() {
    let f = fixture();
    assert_eq!(f.auth("bob", &hotp(0)).outcome, Some(Outcome::Ok));
    assert_eq!(f.auth("bob", &hotp(0)).outcome, Some(Outcome::Reject));
    assert_eq!(f.auth("bob", &hotp(5)).outcome, Some(Outcome::Ok));
    assert_eq!(f.auth("bob", &hotp(3)).outcome, Some(Outcome::Reject));
    // Beyond the look-ahead of 10 from counter 6.
    assert_eq!(f.auth("bob", &hotp(17)).outcome, Some(Outcome::Reject));
}

#[test]
fn any_of_several_tokens_may_answer() {
    let f = fixture();
    let eight = otp::hotp_code(SEED, T / 30, 8, otp::Algorithm::Sha256);
    assert_eq!(f.auth("carol", &eight).outcome, Some(Outcome::Ok));
    assert_eq!(f.auth("carol", &hotp(0)).outcome, Some(Outcome::Ok));
    let bad = f.auth("carol", "12345");
    assert_eq!(bad.message(), Some("The code must be 6 or 8 digits"));
}

#[test]
fn lockout_after_max_failures_then_expiry() {
    let f = fixture();
    for _ in 0..2 {
        let out = f.auth("alice", "000000");
        assert_eq!(out.outcome, Some(Outcome::Reject));
    }
    let third = f.auth("alice", "000000");
    assert_eq!(third.outcome, Some(Outcome::Userlock));
    assert_eq!(third.message(), Some("Too many failed attempts: try again in 300 seconds"));
    // The right code is refused while locked, and not used up.
    f.clock.advance(100);
    let locked = f.auth("alice", &totp(T + 100));
    assert_eq!(locked.outcome, Some(Outcome::Userlock));
    assert_eq!(locked.message(), Some("Too many failed attempts: try again in 200 seconds"));
    // authorize refuses too, before any first factor runs.
    let early = f.authorize(b"alice", "x");
    assert_eq!(early.outcome, Some(Outcome::Userlock));
    // After the lock: a fresh count.
    f.clock.advance(200);
    assert_eq!(f.auth("alice", "000000").outcome, Some(Outcome::Reject));
    assert_eq!(f.auth("alice", &totp(T + 300)).outcome, Some(Outcome::Ok));
}

#[test]
fn success_resets_the_failure_count() {
    let f = fixture();
    f.auth("alice", "000000");
    f.auth("alice", "000000");
    assert_eq!(f.auth("alice", &totp(T)).outcome, Some(Outcome::Ok));
    f.auth("alice", "000000");
    f.auth("alice", "000000");
    assert_eq!(f.auth("alice", "000000").outcome, Some(Outcome::Userlock));
}

#[test]
fn state_survives_a_restart() {
    let f = fixture();
    let code = totp(T);
    assert_eq!(f.auth("alice", &code).outcome, Some(Outcome::Ok));
    assert_eq!(f.auth("bob", &hotp(0)).outcome, Some(Outcome::Ok));
    let again = f.reopen();
    let out = again.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(code.as_bytes()),
        ..AuthenticateInput::default()
    });
    assert_eq!(out.outcome, Some(Outcome::Reject));
    let out = again.authenticate(AuthenticateInput {
        user_name: Some(b"bob"),
        password: Some(hotp(0).as_bytes()),
        ..AuthenticateInput::default()
    });
    assert_eq!(out.outcome, Some(Outcome::Reject));
}

#[test]
fn a_journal_that_cannot_be_written_answers_right_and_wrong_codes_alike() {
    let f = fixture();
    // The journal replaced by a directory after start: every append fails.
    let journal = f.dir.path().join("state/state.jsonl");
    fs::remove_file(&journal).unwrap();
    fs::create_dir(&journal).unwrap();
    let internal = "Authentication is unavailable, try again later";
    for code in [totp(T), "000000".to_string()] {
        let out = f.auth("alice", &code);
        assert_eq!(out.outcome, Some(Outcome::Fail), "{code}: {:?}", out.reply_messages);
        assert_eq!(out.message(), Some(internal));
    }
    for _ in 0..5 {
        assert_eq!(f.auth("alice", "000000").message(), Some(internal), "never a lockout that lets guesses through");
    }
}

#[test]
fn bad_input_is_rejected_with_a_reason() {
    let f = fixture();
    let none = f.engine.authenticate(AuthenticateInput { user_name: Some(b"alice"), ..AuthenticateInput::default() });
    assert_eq!(none.outcome, Some(Outcome::Invalid));
    assert_eq!(f.auth("alice", "").outcome, Some(Outcome::Invalid));
    let long = f.auth("alice", &"1".repeat(253));
    assert_eq!(long.message(), Some("The code must be 6 digits"));
    assert_eq!(f.auth("alice", "abcdef").message(), Some("The code must be 6 digits"));
    let unknown = f.auth("mallory", "123456");
    assert_eq!(unknown.message(), Some("No second factor is enrolled for this user"));

    let not_utf8 = f.authorize(b"al\xffice", "123456");
    assert_eq!(not_utf8.outcome, Some(Outcome::Invalid));
    assert_eq!(not_utf8.reply_message.as_deref(), Some("Malformed user name"));
    assert!(logged(&not_utf8.log, "not valid UTF-8"));
    assert_eq!(f.authorize(b"@realm", "1").outcome, Some(Outcome::Invalid));
    assert_eq!(f.authorize(b"alice@", "1").outcome, Some(Outcome::Invalid));
    assert_eq!(f.authorize(b"al\nice", "1").outcome, Some(Outcome::Invalid));
}

#[test]
fn authorize_sets_names_and_auth_type() {
    let f = fixture();
    let out = f.authorize(b"alice@example.com", "123456");
    assert_eq!(out.outcome, Some(Outcome::Updated));
    assert_eq!(out.stripped_user_name.as_deref(), Some("alice"));
    assert_eq!(out.realm.as_deref(), Some("example.com"));
    assert!(out.set_auth_type);

    // Policy already chose another Auth-Type: leave the request alone.
    let other = f.engine.authorize(AuthorizeInput {
        user_name: Some(b"alice"),
        password: Some(b"1"),
        auth_type: Some("Accept"),
        has_state: false,
        eap: false,
        quiet: false,
    });
    assert_eq!(other.outcome, Some(Outcome::Noop));
    assert!(!other.set_auth_type);
    // Our own name set by policy: go on, without setting it again.
    let ours = f.engine.authorize(AuthorizeInput {
        user_name: Some(b"alice"),
        password: Some(b"1"),
        auth_type: Some("mfa"),
        has_state: false,
        eap: false,
        quiet: false,
    });
    assert_eq!(ours.outcome, Some(Outcome::Updated));
    assert!(!ours.set_auth_type);
}

#[test]
fn users_without_a_token_are_left_alone_when_not_required() {
    let f = fixture_with(|r| r.require_token = false);
    let out = f.authorize(b"mallory", "x");
    assert_eq!(out.outcome, Some(Outcome::Noop));
    assert!(!out.set_auth_type);
    let required = fixture();
    assert!(required.authorize(b"mallory", "x").set_auth_type);
}

#[test]
fn password_otp_mode_splits_and_authenticate_uses_the_stash() {
    let f = fixture_with(|r| {
        r.mode = Some("password+otp".into());
        r.separator = Some(",".into());
    });
    let code = totp(T);
    let out = f.authorize(b"alice", &format!("pass,word,{code}"));
    assert_eq!(out.outcome, Some(Outcome::Updated));
    assert_eq!(out.password.as_deref(), Some("pass,word"));
    assert_eq!(out.stashed_code.as_deref(), Some(code.as_str()));
    // No secret in the log.
    assert!(!out.log.iter().any(|l| l.text.contains(&code) || l.text.contains("pass,word")));

    let auth = f.engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pass,word"),
        stashed_code: out.stashed_code,
        ..AuthenticateInput::default()
    });
    assert_eq!(auth.outcome, Some(Outcome::Ok));

    let missing = f.authorize(b"alice", "just-a-password");
    assert_eq!(missing.outcome, Some(Outcome::Reject));
    assert!(missing.reply_message.unwrap().starts_with("Enter your password"));

    let no_stash =
        f.engine.authenticate(AuthenticateInput { user_name: Some(b"alice"), ..AuthenticateInput::default() });
    assert_eq!(no_stash.outcome, Some(Outcome::Fail));
}

/// Regression: the field was converted lossily, so any invalid byte reached the first
/// factor as U+FFFD and matched a stored password holding U+FFFD.
#[test]
fn password_otp_mode_refuses_a_field_that_is_not_utf8() {
    let f = fixture_with(|r| r.mode = Some("password+otp".into()));
    let field = [b"caf\xfe,".as_slice(), totp(T).as_bytes()].concat();
    let out = f.engine.authorize(AuthorizeInput {
        user_name: Some(b"alice"),
        password: Some(&field),
        auth_type: None,
        has_state: false,
        eap: false,
        quiet: false,
    });
    assert_eq!(out.outcome, Some(Outcome::Reject));
    assert_eq!(out.password, None, "nothing is handed to the first factor");
    assert_eq!(out.stashed_code, None);
    assert!(logged(&out.log, "not valid UTF-8"));
}

#[test]
fn messages_are_configurable() {
    let f = fixture_with(|r| {
        r.messages.wrong_code = "Nope".into();
        r.messages.locked = "Locked {seconds}s".into();
    });
    assert_eq!(f.auth("alice", "000000").message(), Some("Nope"));
    f.auth("alice", "000000");
    assert_eq!(f.auth("alice", "000000").message(), Some("Locked 300s"));
}

#[test]
fn no_log_line_holds_a_code_or_seed() {
    let f = fixture();
    let code = totp(T);
    let mut lines = Vec::new();
    lines.extend(f.auth("alice", &code).log);
    lines.extend(f.auth("alice", &code).log);
    lines.extend(f.auth("alice", "999999").log);
    lines.extend(f.auth("bob", &hotp(0)).log);
    for line in &lines {
        for secret in [code.as_str(), "999999", SEED_B32, hotp(0).as_str()] {
            assert!(!line.text.contains(secret), "log line holds a secret: {}", line.text);
        }
    }
}

#[test]
fn unusable_files_name_the_item() {
    let tmp = TempDir::new("engine");
    let dir = tmp.path();
    let mut r = raw(dir);
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(T));
    let err = Engine::new("mfa", Config::from_raw(&r).unwrap(), clock.clone()).err().unwrap();
    assert_eq!(err.item, "tokens");

    fs::write(dir.join("tokens.json"), tokens_json()).unwrap();
    fs::set_permissions(dir.join("tokens.json"), fs::Permissions::from_mode(0o644)).unwrap();
    let err = Engine::new("mfa", Config::from_raw(&r).unwrap(), clock.clone()).err().unwrap();
    assert_eq!(err.item, "tokens");

    fs::set_permissions(dir.join("tokens.json"), fs::Permissions::from_mode(0o640)).unwrap();
    r.user_map = Some(dir.join("missing-map").display().to_string());
    let err = Engine::new("mfa", Config::from_raw(&r).unwrap(), clock).err().unwrap();
    assert_eq!(err.item, "user_map");
}

#[test]
fn ignore_case_finds_the_user_whatever_the_case() {
    let f = fixture_with(|r| {
        r.ignore_case = true;
        r.require_token = false;
    });
    let out = f.authorize(b"ALICE", "x");
    assert!(out.set_auth_type, "ALICE is alice: not left to the first factor alone");
    assert_eq!(f.auth("Alice", &totp(T)).outcome, Some(Outcome::Ok));
    let exact = fixture_with(|r| r.require_token = false);
    assert!(!exact.authorize(b"ALICE", "x").set_auth_type);
}

#[test]
fn before_any_password_unknown_unenrolled_and_locked_users_read_alike() {
    let f = fixture_with(|r| r.detailed_messages = false);
    let wrong = f.auth("alice", "000000");
    assert_eq!(wrong.message(), Some("Wrong or already used code"));
    assert_eq!(f.auth("mallory", "123456").message(), wrong.message(), "not in the token file");
    f.auth("alice", "000000");
    let locking = f.auth("alice", "000000");
    assert_eq!(locking.outcome, Some(Outcome::Userlock), "the lock still holds");
    assert_eq!(locking.message(), wrong.message());
    let right = f.auth("alice", &totp(T));
    assert_eq!((right.outcome, right.message()), (Some(Outcome::Userlock), wrong.message()));
    assert_eq!(f.authorize(b"alice", "x").reply_message.as_deref(), wrong.message());
    // The log still says what happened.
    assert!(logged(&right.log, "is locked for"), "{:?}", right.log);
}

/// Mode otp by default: a malformed code reads as a wrong one, whoever sends it, so
/// that neither the account nor its code length shows; the log still says why.
#[test]
fn before_any_password_a_malformed_code_reads_as_a_wrong_one() {
    let f = fixture_with(|r| {
        r.detailed_messages = false;
        r.lockout.max_failures = 100;
    });
    let wrong = "Wrong or already used code";
    for code in ["abc", "1", "1234567890", "12345678"] {
        for user in ["alice", "carol", "mallory"] {
            let out = f.auth(user, code);
            assert_eq!((out.outcome, out.message()), (Some(Outcome::Reject), Some(wrong)), "{user} {code}");
        }
    }
    let out = f.auth("alice", "abc");
    assert!(logged(&out.log, "sent a code that is not 6 digits"), "{:?}", out.log);
    assert_eq!(f.auth("alice", "").message(), Some(wrong), "no code at all");
    assert_eq!(f.auth("mallory", "").message(), Some(wrong));
}

#[test]
fn password_modes_refuse_a_locked_user_before_the_password_as_a_wrong_password() {
    let dir = TempDir::new("engine-uniform");
    dir.file("tokens.json", &tokens_json(), 0o640);
    let clock = Arc::new(FixedClock::new(T));
    let cfg = |detailed| {
        let mut r = raw_config(dir.path(), "password+otp");
        r.detailed_messages = detailed;
        Config::from_raw(&r).unwrap()
    };
    let engine = Engine::new("mfa", cfg(false), clock.clone()).unwrap();
    for _ in 0..3 {
        engine.authenticate(AuthenticateInput {
            user_name: Some(b"alice"),
            password: Some(b"pw"),
            stashed_code: Some("000000".into()),
            ..AuthenticateInput::default()
        });
    }
    let input = || AuthorizeInput {
        user_name: Some(b"alice"),
        password: Some(b"pw,123456"),
        auth_type: None,
        has_state: false,
        eap: false,
        quiet: false,
    };
    let early = engine.authorize(input());
    assert_eq!(early.outcome, Some(Outcome::Userlock));
    assert_eq!(early.reply_message, None, "as pap's reject of a wrong password: no Reply-Message");
    let detailed = Engine::new("mfa", cfg(true), clock).unwrap().authorize(input());
    assert!(detailed.reply_message.unwrap().starts_with("Too many failed attempts"));
}

/// The module's journal, opened as the module opens it, is compacted once 100,000
/// records have piled up (README, "State journal"), and not before.
#[test]
fn the_modules_journal_compacts_after_100_000_records() {
    use crate::store::state_store::{Claim, Take};
    let dir = TempDir::new("compact-100k");
    let cfg = Config::from_raw(&raw_config(dir.path(), "otp")).unwrap();
    let store = open_store(&cfg, None).unwrap();
    let claim = |step| store.take_unless_locked("alice", Claim::TotpStep { serial: "T1", step }, T).unwrap();
    let lines = || fs::read_to_string(&cfg.state).unwrap().lines().count();
    for step in 1..100_000 {
        assert_eq!(claim(step), Take::Taken);
    }
    assert_eq!(lines(), 99_999, "one record a claim, none compacted away");
    assert_eq!(claim(100_000), Take::Taken);
    // Compaction runs on its own thread: the file is one record once it has.
    let started = std::time::Instant::now();
    while lines() > 1 && started.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(lines(), 1, "compacted to alice's one token");
    assert_eq!(claim(100_000), Take::Used, "the claims survive it");
    assert_eq!(store.token("alice", "T1").last_step, Some(100_000));
}

/// What only the SMS and e-mail clients can check (a CA file, a body template)
/// stops the start in every mode and backend, not only where codes are sent.
#[test]
fn broken_sms_and_email_sections_stop_the_start_whatever_uses_them() {
    let dir = TempDir::new("engine-channels");
    dir.file("tokens.json", &tokens_json(), 0o640);
    let start = |change: &dyn Fn(&mut RawConfig)| {
        let mut raw = raw(dir.path());
        change(&mut raw);
        let cfg = Config::from_raw(&raw).unwrap();
        Backend::new("mfa", cfg, Arc::new(FixedClock::new(T))).err().map(|e| e.item)
    };
    let sms_with_ca = |raw: &mut RawConfig| {
        raw.sms.url = Some("https://sms.example.com/send".into());
        raw.sms.body = Some(r#"{"to": "{destination}", "text": "{message}"}"#.into());
        raw.sms.message = Some("Your code: {code}".into());
        raw.sms.ca_file = Some(dir.path().join("missing-ca.pem").display().to_string());
    };
    for mode in ["otp", "password+otp"] {
        assert_eq!(start(&|r| r.mode = Some(mode.into())), None, "{mode} starts without them");
        let broken = start(&|r| {
            r.mode = Some(mode.into());
            sms_with_ca(r);
        });
        assert_eq!(broken.as_deref(), Some("sms.ca_file"), "{mode}");
        let no_destination = start(&|r| {
            r.mode = Some(mode.into());
            sms_with_ca(r);
            r.sms.ca_file = None;
            r.sms.body = Some(r#"{"text": "{message}"}"#.into());
        });
        assert_eq!(no_destination.as_deref(), Some("sms.body"), "{mode}");
    }
    let privacyidea = |raw: &mut RawConfig| {
        raw.backend = Some("privacyidea".into());
        raw.privacyidea.url = Some("https://pi.example.com".into());
    };
    assert_eq!(
        start(&|r| {
            privacyidea(r);
            sms_with_ca(r);
        })
        .as_deref(),
        Some("sms.ca_file")
    );
}

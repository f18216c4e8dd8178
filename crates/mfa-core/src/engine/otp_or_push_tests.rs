//! Mode otp-or-push: a code alone is decided in authorize; a password is left to
//! the first factor and a push.

use super::*;
use crate::clock::FixedClock;
use crate::factor::otp;
use crate::testutil::TempDir;

use super::test_config::{raw_config, SEED, SEED_B32, T};

fn engine(dir: &TempDir) -> Engine {
    engine_with(dir, |_| {})
}

fn engine_with(dir: &TempDir, change: impl Fn(&mut crate::config::RawConfig)) -> Engine {
    let tokens = format!(
        r#"{{"users": {{"alice": {{"tokens": [{{"serial": "T1", "type": "totp", "secret": "{SEED_B32}"}}]}}}}}}"#
    );
    dir.file("tokens.json", &tokens, 0o640);
    let mut raw = raw_config(dir.path(), "otp-or-push");
    raw.push.url = Some("https://push.example.com/".into());
    change(&mut raw);
    Engine::new("mfa", Config::from_raw(&raw).unwrap(), Arc::new(FixedClock::new(T))).unwrap()
}

fn authorize(engine: &Engine, user: &str, field: &str) -> AuthorizeOutput {
    engine.authorize(AuthorizeInput {
        user_name: Some(user.as_bytes()),
        password: Some(field.as_bytes()),
        auth_type: None,
        has_state: false,
        eap: false,
        quiet: false,
    })
}

#[test]
fn a_code_alone_is_accepted_in_authorize_once_and_a_password_goes_on() {
    let dir = TempDir::new("otp-or-push");
    let engine = engine(&dir);
    let code = otp::hotp_code(SEED, T / 30, 6, otp::Algorithm::Sha1);
    let ok = authorize(&engine, "alice", &code);
    assert!(ok.accept && ok.outcome == Some(Outcome::Ok), "{:?}", ok.log);
    assert!(!ok.set_auth_type, "Auth-Type is Accept, not the module");
    let replay = authorize(&engine, "alice", &code);
    assert!(!replay.accept);
    assert_eq!(replay.outcome, Some(Outcome::Reject));
    assert_eq!(replay.reply_message.as_deref(), Some(engine.config().messages.wrong_code.as_str()));

    let password = authorize(&engine, "alice", "pw-alice");
    assert!(!password.accept && password.set_auth_type, "the first factor and the push follow");
    assert_eq!(password.outcome, Some(Outcome::Updated));

    let unknown = authorize(&engine, "nobody", "123456");
    assert_eq!(unknown.outcome, Some(Outcome::Reject));
    assert_eq!(unknown.reply_message.as_deref(), Some(engine.config().messages.wrong_code.as_str()));
}

/// With `detailed_messages = yes`, a code from someone without a token says so,
/// as in mode otp.
#[test]
fn with_detailed_messages_a_code_from_someone_without_a_token_says_so() {
    let dir = TempDir::new("otp-or-push-detailed");
    let engine = engine_with(&dir, |raw| raw.detailed_messages = true);
    let unknown = authorize(&engine, "nobody", "123456");
    assert_eq!(unknown.outcome, Some(Outcome::Reject));
    assert_eq!(unknown.reply_message.as_deref(), Some(engine.config().messages.no_token.as_str()));
}

/// Before any password, a locked user's answers are otp's: a wrong code's words,
/// not a silence that would tell the account is locked.
#[test]
fn a_locked_user_s_code_alone_reads_as_a_wrong_code() {
    let dir = TempDir::new("otp-or-push-locked");
    let engine = engine(&dir);
    let wrong_code = engine.config().messages.wrong_code.clone();
    let right = |c: &str| (T / 30 - 1..=T / 30 + 1).any(|s| otp::hotp_code(SEED, s, 6, otp::Algorithm::Sha1) == c);
    let wrong = ["000000", "111111", "222222"].into_iter().find(|c| !right(c)).unwrap();
    for _ in 0..engine.config().lockout.max_failures {
        authorize(&engine, "alice", wrong);
    }
    let code = otp::hotp_code(SEED, T / 30, 6, otp::Algorithm::Sha1);
    let locked = authorize(&engine, "alice", &code);
    assert!(!locked.accept, "{:?}", locked.log);
    assert_eq!(locked.outcome, Some(Outcome::Userlock), "{:?}", locked.log);
    assert_eq!(locked.reply_message.as_deref(), Some(wrong_code.as_str()), "{:?}", locked.log);
}

#[test]
fn otp_or_push_needs_a_push_provider_and_the_local_backend() {
    let dir = TempDir::new("otp-or-push-config");
    let mut raw = raw_config(dir.path(), "otp-or-push");
    let err = Config::from_raw(&raw).unwrap_err();
    assert!(err.item.starts_with("push"), "{err:?}");
    raw.push.url = Some("https://push.example.com/".into());
    raw.backend = Some("duo".into());
    assert_eq!(Config::from_raw(&raw).unwrap_err().item, "mode");
}

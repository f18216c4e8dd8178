//! 802.1X decisions: EAP requests in authorize, the split at authenticate (EAP-GTC),
//! the inner EAP session's State, and the post-auth check.

use super::post_auth::{Duty, PostAuthInput, Record};
use super::*;
use crate::clock::FixedClock;
use crate::factor::otp;
use crate::testutil::TempDir;

use super::test_config::{raw_config, SEED, SEED_B32, T};

fn backend(mode: &str, require_token: bool) -> (TempDir, Backend) {
    let dir = TempDir::new("eap");
    let tokens = format!(
        r#"{{"users": {{"alice": {{"tokens": [{{"serial": "T1", "type": "totp", "secret": "{SEED_B32}"}}]}}}}}}"#
    );
    dir.file("tokens.json", &tokens, 0o640);
    let mut raw = raw_config(dir.path(), mode);
    raw.require_token = require_token;
    let engine = Engine::new("mfa", Config::from_raw(&raw).unwrap(), Arc::new(FixedClock::new(T))).unwrap();
    (dir, Backend::Local(Box::new(engine)))
}

fn code() -> String {
    otp::hotp_code(SEED, T / 30, 6, otp::Algorithm::Sha1)
}

fn eap_authorize(b: &Backend, password: Option<&str>) -> AuthorizeOutput {
    b.authorize(AuthorizeInput {
        user_name: Some(b"alice"),
        password: password.map(str::as_bytes),
        auth_type: None,
        has_state: true,
        eap: true,
    })
}

#[test]
fn an_eap_request_without_password_is_left_to_eap() {
    for mode in ["password+otp", "otp"] {
        let (_d, b) = backend(mode, true);
        let out = eap_authorize(&b, None);
        assert_eq!(out.outcome, Some(Outcome::Noop), "{mode}");
        assert!(out.deferred && !out.set_auth_type && out.stashed_code.is_none(), "{mode}");
    }
}

#[test]
fn gtc_text_is_split_at_authenticate_then_the_code_checked() {
    let (_d, b) = backend("password+otp", true);
    let state = [7u8; 16];
    let text = format!("pw,{}", code());
    let first = b.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(text.as_bytes()),
        state: Some(&state),
        eap: true,
        deferred_split: true,
        ..AuthenticateInput::default()
    });
    assert_eq!(first.outcome, Some(Outcome::Updated));
    let split = first.split.expect("split");
    assert_eq!((split.password.as_str(), split.code.as_str()), ("pw", code().as_str()));
    assert!(!format!("{split:?}").contains("pw,"), "Debug shows no secret");
    // The second call: the stashed code; the EAP session's State is not ours, and not refused.
    let second = b.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        state: Some(&state),
        eap: true,
        stashed_code: Some(split.code),
        ..AuthenticateInput::default()
    });
    assert_eq!(second.outcome, Some(Outcome::Ok), "{:?}", second.log);
    // Without a code in the text: refused, nothing to split.
    let none = b.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        eap: true,
        deferred_split: true,
        ..AuthenticateInput::default()
    });
    assert_eq!(none.outcome, Some(Outcome::Reject));
    assert!(none.split.is_none());
}

#[test]
fn a_foreign_state_outside_eap_is_still_refused() {
    let (_d, b) = backend("password+otp", true);
    let out = b.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        state: Some(&[7u8; 16]),
        stashed_code: Some(code()),
        ..AuthenticateInput::default()
    });
    assert_ne!(out.outcome, Some(Outcome::Ok));
}

#[test]
fn an_auth_type_set_before_the_module_is_said_at_info_level() {
    let (_d, b) = backend("password+otp", true);
    let out = b.authorize(AuthorizeInput {
        user_name: Some(b"alice"),
        password: Some(b"pw,123456"),
        auth_type: Some("PAP"),
        has_state: false,
        eap: false,
    });
    assert_eq!(out.outcome, Some(Outcome::Noop));
    assert!(out.log.iter().any(|l| l.level == Level::Info && l.text.contains("already \"PAP\"")));
}

fn check(b: &Backend, user: &str, verified_here: bool, tunnel: Vec<Record>) -> PostAuthOutput {
    b.post_auth(PostAuthInput {
        user_name: Some(user.as_bytes()),
        verified_here,
        tunnel,
        path: "Auth-Type \"EAP\"",
        quiet: false,
    })
}
use super::post_auth::PostAuthOutput;

#[test]
fn post_auth_refuses_an_accept_the_module_did_not_verify() {
    let (_d, b) = backend("password+otp", false);
    assert_eq!(b.duty(Some(b"alice")), Duty::Required("alice".into()));
    assert_eq!(b.duty(Some(b"bob")), Duty::NotRequired);
    assert_eq!(check(&b, "alice", true, vec![]).outcome, Outcome::Ok);
    let refused = check(&b, "alice", false, vec![]);
    assert_eq!(refused.outcome, Outcome::Reject);
    assert_eq!(refused.log.iter().filter(|l| l.level == Level::Warn).count(), 1);
    assert!(refused.log[0].text.contains("through Auth-Type \"EAP\""));
    // bob has no token and require_token is off: not the module's to refuse.
    assert_eq!(check(&b, "bob", false, vec![]).outcome, Outcome::Noop);

    let (_d2, strict) = backend("password+otp", true);
    assert_eq!(check(&strict, "bob", false, vec![]).outcome, Outcome::Reject);
    assert_eq!(check(&strict, "", false, vec![]).outcome, Outcome::Reject);
}

#[test]
fn post_auth_follows_what_the_inner_tunnel_recorded() {
    let (_d, b) = backend("password+otp", false);
    let logins = post_auth::Logins::new();
    let verified = logins.open("mfa", "alice", true, T).unwrap();
    let pending = logins.open("mfa", "alice", false, T).unwrap();
    // The outer identity is anonymous: the records decide.
    assert_eq!(check(&b, "anonymous", false, vec![logins.take(&verified).unwrap()]).outcome, Outcome::Ok);
    let refused = check(&b, "anonymous", false, vec![logins.take(&pending).unwrap()]);
    assert_eq!(refused.outcome, Outcome::Reject);
    assert!(refused.log[0].text.contains("the inner tunnel let \"alice\" in"));
}

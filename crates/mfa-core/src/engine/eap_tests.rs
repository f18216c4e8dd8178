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
        quiet: false,
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
        inner: true,
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
        inner: true,
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
fn a_password_next_to_an_eap_message_is_refused_and_nothing_is_kept() {
    // TTLS lets the client send a User-Password of its own next to its inner EAP-GTC
    // response: "x,<code>" kept here would let Auth-Type mfa_gtc take the code alone.
    // Outside, the same with a made-up State would skip the first factor.
    let text = format!("x,{}", code());
    for mode in ["password+otp", "otp", "password-then-otp", "auto"] {
        for has_state in [false, true] {
            let (_d, b) = backend(mode, true);
            let out = b.authorize(AuthorizeInput {
                user_name: Some(b"alice"),
                password: Some(text.as_bytes()),
                auth_type: None,
                has_state,
                eap: true,
                quiet: false,
            });
            assert_eq!(out.outcome, Some(Outcome::Reject), "{mode} state {has_state}");
            assert!(out.stashed_code.is_none() && out.password.is_none(), "{mode}: nothing kept");
            assert!(!out.set_auth_type && !out.deferred, "{mode}");
            assert!(out
                .log
                .iter()
                .any(|l| l.level == Level::Info && l.text.contains("EAP-Message and a User-Password")));
        }
    }
    // A user the module does not take is refused the same way: the answer shows no account.
    let (_d, lax) = backend("password+otp", false);
    let out = lax.authorize(AuthorizeInput {
        user_name: Some(b"bob"),
        password: Some(b"pw"),
        auth_type: None,
        has_state: false,
        eap: true,
        quiet: false,
    });
    assert_eq!(out.outcome, Some(Outcome::Reject));
}

#[test]
fn a_made_up_state_with_an_eap_message_outside_a_tunnel_is_refused() {
    // Only an inner-tunnel request's State can be the EAP session's: an outer one that
    // carries an EAP-Message is still an answer to the module's challenge, or refused,
    // never a reason to start a challenge after a first factor that did not run.
    for mode in ["password-then-otp", "auto", "password+otp"] {
        let (_d, b) = backend(mode, true);
        let out = b.authenticate(AuthenticateInput {
            user_name: Some(b"alice"),
            password: Some(b"anything"),
            state: Some(&[7u8; 16]),
            eap: true,
            stashed_code: (mode == "password+otp").then(code),
            ..AuthenticateInput::default()
        });
        assert_eq!(out.outcome, Some(Outcome::Reject), "{mode}: {:?}", out.log);
        assert!(out.challenge_state.is_none(), "{mode}: no challenge");
    }
}

#[test]
fn gtc_leaves_a_user_without_token_to_the_first_factor_when_require_token_is_off() {
    let (_d, lax) = backend("password+otp", false);
    let gtc = |b: &Backend, user: &str, inner: bool| {
        b.authenticate(AuthenticateInput {
            user_name: Some(user.as_bytes()),
            password: Some(b"bobs-password"),
            state: Some(&[7u8; 16]),
            eap: true,
            inner,
            ..AuthenticateInput::default()
        })
        .outcome
    };
    // pap, between the two calls of Auth-Type mfa_gtc, decides.
    assert_eq!(gtc(&lax, "bob", true), Some(Outcome::Noop));
    // alice has a token: no code was split off, refused as before.
    assert!(!matches!(gtc(&lax, "alice", true), Some(Outcome::Ok | Outcome::Noop)));
    // Outside a tunnel, or with require_token = yes: not left to anyone.
    assert_ne!(gtc(&lax, "bob", false), Some(Outcome::Noop));
    let (_d2, strict) = backend("password+otp", true);
    assert!(!matches!(gtc(&strict, "bob", true), Some(Outcome::Ok | Outcome::Noop)));
}

/// A Duo that must not be asked: each test below is decided before any call.
struct NoDuo;

impl crate::backend::duo::DuoApi for NoDuo {
    fn call(
        &self,
        _method: &str,
        path: &str,
        _params: &[(&str, &str)],
    ) -> Result<crate::backend::duo::Answer, crate::backend::duo::CallError> {
        panic!("Duo was called ({path}) for a request that is to be refused");
    }
}

#[test]
fn duo_refuses_a_password_next_to_an_eap_message_and_a_made_up_state_outside_a_tunnel() {
    let dir = TempDir::new("eap-duo");
    for (mode, approval) in [("push", "challenge"), ("auto", "challenge"), ("password+otp", "wait")] {
        let mut raw = raw_config(dir.path(), mode);
        raw.backend = Some("duo".into());
        raw.duo.api_host = Some("api-test.duosecurity.com".into());
        raw.duo.integration_key = Some("DIWJ8X6AEYOR5OMC6TQ1".into());
        raw.duo.secret_key = Some("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into());
        raw.duo.approval = Some(approval.into());
        let cfg = Config::from_raw(&raw).unwrap();
        let duo = DuoEngine::with_api("mfa", cfg, Arc::new(FixedClock::new(T)), Box::new(NoDuo)).unwrap();
        let out = duo.authorize(AuthorizeInput {
            user_name: Some(b"alice"),
            password: Some(b"x,123456"),
            auth_type: None,
            has_state: true,
            eap: true,
            quiet: false,
        });
        assert_eq!(out.outcome, Some(Outcome::Reject), "{mode}");
        assert!(out.stashed_code.is_none() && out.password.is_none() && !out.set_auth_type, "{mode}");
        // Should Auth-Type mfa be reached anyway (a policy): the State is not eap's outside.
        let out = duo.authenticate(AuthenticateInput {
            user_name: Some(b"alice"),
            password: Some(b"anything"),
            state: Some(&[7u8; 40]),
            nas: "127.0.0.1||".into(),
            eap: true,
            ..AuthenticateInput::default()
        });
        assert_eq!(out.outcome, Some(Outcome::Reject), "{mode}: {:?}", out.log);
    }
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
        quiet: false,
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

/// An inner tunnel left a handle whose record is gone (expired, or dropped from a
/// full table): the outer name ("anonymous", no token, require_token = no) would let
/// the Accept through; the check refuses it instead, saying why.
#[test]
fn post_auth_refuses_when_the_inner_tunnels_record_is_gone() {
    let (_d, b) = backend("password+otp", false);
    let logins = post_auth::Logins::new();
    let lost = post_auth::stored(&[9u8; 16], "mfa");
    let gone = logins.take_all(&[lost], "mfa");
    assert_eq!(check(&b, "anonymous", false, vec![]).outcome, Outcome::Noop, "no handle: the outer name decides");
    let refused = check(&b, "anonymous", false, gone.clone());
    assert_eq!(refused.outcome, Outcome::Reject);
    assert!(refused.log.iter().any(|l| l.level == Level::Warn && l.text.contains("record the inner tunnel left")));
    // A record verified in this login (the inner request made a new one) still lets it in.
    let verified = logins.open("mfa", "alice", true, T).unwrap();
    let tunnel = [gone, vec![logins.take(&verified).unwrap()]].concat();
    assert_eq!(check(&b, "anonymous", false, tunnel).outcome, Outcome::Ok);
}

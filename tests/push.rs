//! Push approval end to end: a real FreeRADIUS in mode push, radclient, and a fake
//! push provider (tests/common/fake_push.rs) that approves, denies, never answers,
//! fails or hangs.

mod common;

use std::time::{Duration, Instant};

use common::fake_push::{FakePush, PushBehaviour};
use common::{Server, Setup};

const USERS: &[(&str, &str)] = &[("alice", "pw-alice"), ("bob", "pw-bob")];

fn tokens() -> String {
    r#"{"users": {"alice": {}, "bob": {}}}"#.to_string()
}

fn push_setup(primary: &FakePush, extra: &str) -> Setup {
    Setup::challenge_mode("push", &tokens(), USERS).with(&format!(
        "push {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n skip_failing = 30\n {extra}\n}}",
        primary.url()
    ))
}

#[test]
fn an_approved_push_accepts_and_the_device_is_told_who_and_where() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_millis(1500)));
    let server = Server::start(&module, &push_setup(&provider, ""));
    let reply = server.auth("alice", "pw-alice");
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(provider.created(), 1);
    let body = provider.last_create_body().unwrap();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["client"], "localhost");
    assert_eq!(body["message"], "Approve login to localhost for alice?");
}

#[test]
fn a_wrong_password_sends_no_push() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let server = Server::start(&module, &push_setup(&provider, ""));
    assert!(server.auth("alice", "wrong").is_reject());
    assert_eq!(provider.created(), 0);
}

#[test]
fn a_denied_push_rejects() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::from_millis(500)));
    let server = Server::start(&module, &push_setup(&provider, ""));
    let reply = server.auth("alice", "pw-alice");
    assert_eq!(reply.message(), Some("The login was denied on your device"), "{reply:?}");
}

#[test]
fn no_answer_in_time_rejects_within_the_bound() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let server = Server::start(&module, &push_setup(&provider, ""));
    let reply = server.auth("alice", "pw-alice");
    assert_eq!(reply.message(), Some("No answer from your device in time"), "{reply:?}");
    assert_eq!(provider.cancelled(), 1, "the unanswered push is cancelled");
}

#[test]
fn failmode_secure_rejects_and_safe_accepts_when_the_provider_fails() {
    let module = require_module!();
    for behaviour in [PushBehaviour::Error500, PushBehaviour::Malformed, PushBehaviour::Close, PushBehaviour::Hang] {
        let provider = FakePush::start(behaviour);
        let secure = Server::start(&module, &push_setup(&provider, ""));
        let reply = secure.auth("alice", "pw-alice");
        assert_eq!(reply.message(), Some("Approval by push is unavailable, try again later"), "{behaviour:?}: {reply:?}");
        drop(secure);

        let safe = Server::start(&module, &push_setup(&provider, "failmode = safe"));
        let reply = safe.auth("alice", "pw-alice");
        assert!(reply.is_accept(), "{behaviour:?}: {reply:?}");
        assert!(safe.debug_log().contains("on the first factor alone"));
    }
}

#[test]
fn the_secondary_provider_takes_over() {
    let module = require_module!();
    let primary = FakePush::start(PushBehaviour::Error500);
    let secondary = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_millis(500)));
    let setup = push_setup(&primary, &format!("secondary_url = \"{}\"", secondary.url()));
    let server = Server::start(&module, &setup);
    assert!(server.auth("alice", "pw-alice").is_accept());
    assert_eq!(secondary.created(), 1);
    // The failing primary is skipped for a while: the next login does not try it.
    let calls = primary.calls();
    assert!(server.auth("bob", "pw-bob").is_accept());
    assert_eq!(primary.calls(), calls);
    assert_eq!(secondary.created(), 2);
}

#[test]
fn a_login_re_sent_while_waiting_joins_the_push() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_secs(3)));
    let server = std::sync::Arc::new(Server::start(&module, &push_setup(&provider, "")));
    // The same login sent three times with new RADIUS IDs, as a NAS that re-sends does.
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let server = server.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300 * i));
                server.auth("alice", "pw-alice")
            })
        })
        .collect();
    for h in handles {
        let reply = h.join().unwrap();
        assert!(reply.is_accept(), "{reply:?}");
    }
    assert_eq!(provider.created(), 1, "one push for one login");
}

#[test]
fn pushes_cannot_take_every_thread() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_secs(3)));
    let mut users = String::from(r#"{"users": {"carol": {"tokens": [{"serial": "T", "type": "totp", "secret": ""#);
    users.push_str(common::SEED_B32);
    users.push_str(r#""}]}"#);
    let mut first_factor: Vec<(String, String)> = Vec::new();
    for i in 0..6 {
        users.push_str(&format!(r#", "u{i}": {{}}"#));
        first_factor.push((format!("u{i}"), "pw".into()));
    }
    users.push_str("}}");
    let mut setup = push_setup(&provider, "max_waiting = 4");
    setup.tokens = users;
    setup.users = first_factor;
    let server = std::sync::Arc::new(Server::start(&module, &setup));
    let started = Instant::now();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let server = server.clone();
            std::thread::spawn(move || server.auth(&format!("u{i}"), "pw"))
        })
        .collect();
    let replies: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let accepted = replies.iter().filter(|r| r.is_accept()).count();
    let busy = replies
        .iter()
        .filter(|r| r.message() == Some("Too many logins are waiting for approval, try again shortly"))
        .count();
    assert_eq!((accepted, busy), (4, 2), "{replies:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

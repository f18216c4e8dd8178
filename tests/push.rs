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
        assert_eq!(
            reply.message(),
            Some("Approval by push is unavailable, try again later"),
            "{behaviour:?}: {reply:?}"
        );
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

/// Alice's login sent three times, 0.3 s apart, with new RADIUS IDs, as a NAS that
/// re-sends does: the three replies.
fn sent_three_times(server: &std::sync::Arc<Server>) -> Vec<common::Reply> {
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let server = server.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300 * i));
                server.auth("alice", "pw-alice")
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_login_re_sent_while_waiting_joins_the_push() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_secs(3)));
    let setup = push_setup(&provider, "").with("stats {\n file = ${confdir}/mfa.prom\n interval = 1\n}");
    let server = std::sync::Arc::new(Server::start(&module, &setup));
    for reply in sent_three_times(&server) {
        assert!(reply.is_accept(), "{reply:?}");
    }
    assert_eq!(provider.created(), 1, "one push for one login");
    // Three accepts, one push approved: the re-sends are not counted as pushes.
    let expected = [
        "rlm_mfa_accepts_total{module=\"mfa\"} 3".to_string(),
        "rlm_mfa_pushes_total{module=\"mfa\",outcome=\"approved\"} 1".to_string(),
    ];
    let text = common::wait_for_lines(&server.dir.join("mfa.prom"), &expected);
    for line in &expected {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
}

/// A denied push whose login the NAS re-sent twice while it waited counts one
/// failure toward the lockout, not three: the re-sends answer with the first's
/// decision. With `max_failures = 2`, the next denied login is the one that locks.
/// In the counters: three refusals, one push denied.
#[test]
fn a_denied_push_re_sent_while_waiting_counts_one_failure() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::from_secs(2)));
    let setup = push_setup(&provider, "")
        .with("lockout {\n max_failures = 2\n duration = 600\n}")
        .with("stats {\n file = ${confdir}/mfa.prom\n interval = 1\n}");
    let server = std::sync::Arc::new(Server::start(&module, &setup));
    for reply in sent_three_times(&server) {
        assert_eq!(reply.message(), Some("The login was denied on your device"), "{reply:?}");
    }
    assert_eq!(provider.created(), 1, "one push for one login");
    // The three refusals in the same file: written after all three were counted.
    let expected = [
        "rlm_mfa_rejects_total{module=\"mfa\",cause=\"push_denied\"} 3".to_string(),
        "rlm_mfa_pushes_total{module=\"mfa\",outcome=\"denied\"} 1".to_string(),
        "rlm_mfa_lockouts_total{module=\"mfa\"} 0".to_string(),
    ];
    let text = common::wait_for_lines(&server.dir.join("mfa.prom"), &expected);
    for line in &expected {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    let next = server.auth("alice", "pw-alice");
    assert!(next.message().unwrap_or_default().starts_with("Too many failed attempts"), "{next:?}");
    assert_eq!(provider.created(), 2);
}

#[test]
fn pushes_cannot_take_every_thread() {
    let module = require_module!();
    // Never answered: two logins wait out push.wait (6 s) in two of the server's four
    // threads; the others are refused at once, whichever thread they get.
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let mut users = String::from(r#"{"users": {"carol": {"tokens": [{"serial": "T", "type": "totp", "secret": ""#);
    users.push_str(common::SEED_B32);
    users.push_str(r#""}]}"#);
    let mut first_factor: Vec<(String, String)> = Vec::new();
    for i in 0..6 {
        users.push_str(&format!(r#", "u{i}": {{}}"#));
        first_factor.push((format!("u{i}"), "pw".into()));
    }
    users.push_str("}}");
    let mut setup = push_setup(&provider, "max_waiting = 2\n when_busy = reject");
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
    let waited = replies.iter().filter(|r| r.message() == Some("No answer from your device in time")).count();
    let busy = replies
        .iter()
        .filter(|r| r.message() == Some("Too many logins are waiting for approval, try again shortly"))
        .count();
    assert_eq!((waited, busy), (2, 4), "{replies:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// alice also has an authenticator app; bob has nothing but push.
fn tokens_with_app() -> String {
    format!(
        r#"{{"users": {{"alice": {{"tokens": [{{"serial": "T-alice", "type": "totp", "secret": "{}"}}]}}, "bob": {{}}}}}}"#,
        common::SEED_B32
    )
}

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

#[test]
fn challenge_then_check_holds_no_thread() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let server = Server::start(&module, &push_setup(&provider, "approval = challenge"));
    let first = server.auth("bob", "pw-bob");
    assert!(first.is_challenge(), "{first:?}");
    // Number matching: the prompt's number is the push's.
    let prompt = first.message().unwrap().to_string();
    let number = prompt
        .strip_prefix("Approve the login numbered ")
        .and_then(|rest| rest.split_once(' '))
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| panic!("no number in {prompt:?}"));
    assert!(number.len() == 2 && number.chars().all(|c| c.is_ascii_digit()), "{prompt:?}");
    assert!(prompt.contains(" on your device, then press OK ("), "{prompt:?}");
    assert_eq!(provider.created(), 1);
    let body = provider.last_create_body().unwrap();
    assert_eq!(body["number"], number.as_str(), "the push carries the prompt's number: {body}");

    // OK pressed before approving: asked again.
    let again = server.answer("bob", "ok", first.state());
    assert!(again.is_challenge(), "{again:?}");
    assert_eq!(again.messages()[0], "Not approved yet: approve on your device, then press OK");
    assert!(again.messages()[1].contains(&format!("numbered {number} ")), "the same number again: {again:?}");

    provider.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    let reply = server.answer("bob", "ok", again.state());
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(provider.created(), 1, "the answer rounds find the same push");
}

#[test]
fn a_code_typed_instead_of_approving_is_accepted() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let mut setup = push_setup(&provider, "approval = challenge");
    setup.tokens = tokens_with_app();
    let server = Server::start(&module, &setup);
    common::settle_in_step(5);
    let first = server.auth("alice", "pw-alice");
    let reply = server.answer("alice", &common::totp_at(common::now()), first.state());
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn a_denied_push_in_challenge_mode_rejects() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::ZERO));
    let server = Server::start(&module, &push_setup(&provider, "approval = challenge"));
    let first = server.auth("bob", "pw-bob");
    let reply = server.answer("bob", "ok", first.state());
    assert_eq!(reply.message(), Some("The login was denied on your device"), "{reply:?}");
}

#[test]
fn past_max_waiting_logins_fall_back_to_challenge() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_secs(3)));
    let server = std::sync::Arc::new(Server::start(&module, &push_setup(&provider, "max_waiting = 1")));
    let waiting = {
        let server = server.clone();
        std::thread::spawn(move || server.auth("alice", "pw-alice"))
    };
    std::thread::sleep(Duration::from_millis(700));
    let second = server.auth("bob", "pw-bob");
    assert!(second.is_challenge(), "{second:?}");
    // A re-send of the waiting login would hold a second thread: refused, not challenged
    // (a challenge would send alice a second push for the one login).
    let re_sent = server.auth("alice", "pw-alice");
    assert_eq!(re_sent.message(), Some("Too many logins are waiting for approval, try again shortly"), "{re_sent:?}");
    assert!(waiting.join().unwrap().is_accept());
    assert_eq!(provider.created(), 2, "alice's push and bob's challenge push");
    std::thread::sleep(Duration::from_secs(3));
    assert!(server.answer("bob", "ok", second.state()).is_accept());
}

#[test]
fn auto_mode_sends_a_push_for_the_word_push_or_an_empty_code() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_millis(500)));
    let mut setup = Setup::challenge_mode("auto", &tokens_with_app(), USERS)
        .file("mods-config/mfa/state.key", KEY)
        .with(&format!("push {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n}}", provider.url()));
    setup.first_factor = true;
    let server = Server::start(&module, &setup);
    assert!(server.auth("alice", "pw-alice,push").is_accept());
    assert!(server.auth("bob", "pw-bob,").is_accept());
    assert_eq!(provider.created(), 2);
    common::settle_in_step(5);
    assert!(server.auth("alice", &format!("pw-alice,{}", common::totp_at(common::now()))).is_accept());
    assert_eq!(provider.created(), 2, "a code needs no push");
    // The menu lists push next to the app.
    let menu = server.auth("alice", "pw-alice");
    assert_eq!(menu.lines()[1..3], ["1. Authenticator app", "2. Approve on your device (push)"]);
    let prompt = server.answer("alice", "2", menu.state());
    std::thread::sleep(Duration::from_millis(600));
    assert!(server.answer("alice", "ok", prompt.state()).is_accept());
    // Listed without tokens ("bob": {}), the password alone: push is bob's one way.
    let pushed = server.auth("bob", "pw-bob");
    assert!(!pushed.is_reject(), "{pushed:?}");
    if pushed.is_challenge() {
        std::thread::sleep(Duration::from_millis(600));
        assert!(server.answer("bob", "ok", pushed.state()).is_accept());
    }
    assert_eq!(provider.created(), 4, "{pushed:?}");
}

#[test]
fn a_push_dialogue_begun_on_one_server_ends_on_the_other() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let setup = push_setup(&provider, "approval = challenge").file("mods-config/mfa/state.key", KEY);
    let primary = Server::start(&module, &setup);
    let secondary = Server::start(&module, &setup);
    let first = primary.auth("bob", "pw-bob");
    let reply = secondary.answer("bob", "ok", first.state());
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(provider.created(), 1);
}

#[test]
fn a_retransmission_with_the_same_id_is_answered_once_the_push_ends() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_secs(3)));
    let server = Server::start(&module, &push_setup(&provider, ""));
    // radclient re-sends the same packet (same ID and authenticator) every second.
    let reply = server.send_with(&["-t", "1", "-r", "8"], "User-Name = \"alice\", User-Password = \"pw-alice\"\n");
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(provider.created(), 1);
}

#[test]
fn fifty_pushes_pending_while_totp_logins_are_answered() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let push_users: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
    let push_tokens = format!(
        r#"{{"users": {{{}}}}}"#,
        push_users.iter().map(|u| format!(r#""{u}": {{}}"#)).collect::<Vec<_>>().join(", ")
    );
    let otp_users: Vec<(String, Vec<u8>)> =
        (0..100).map(|i| (format!("t{i}"), format!("seed-of-otp-user-{i:05}").into_bytes())).collect();
    let otp_tokens = format!(
        r#"{{"users": {{{}}}}}"#,
        otp_users
            .iter()
            .map(|(u, seed)| {
                let b32 = data_encoding::BASE32_NOPAD.encode(seed);
                format!(r#""{u}": {{"tokens": [{{"serial": "T-{u}", "type": "totp", "secret": "{b32}"}}]}}"#)
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let first_factor: Vec<(String, String)> = push_users.iter().map(|u| (u.clone(), "pw".to_string())).collect();
    let mut setup = Setup::challenge_mode("push", &push_tokens, &[])
        .with(&format!(
            "require_token = no\npush {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 8\n max_waiting = 8\n}}",
            provider.url()
        ))
        .file(
            "mods-enabled/mfa_otp",
            "mfa mfa_otp {\n mode = otp\n require_token = no\n tokens = ${modconfdir}/mfa/otp-tokens.json\n \
             state = ${db_dir}/mfa/otp-state.jsonl\n}\n",
        )
        .file("mods-config/mfa/otp-tokens.json", &otp_tokens);
    setup.users = first_factor;
    setup.site = Some(
        "server mfa {\nlisten {\n\ttype = auth\n\tipaddr = *\n\tport = 1812\n}\n\
         authorize {\n\tmfa\n\tmfa_otp\n\tfiles\n\tpap\n}\n\
         authenticate {\n\tAuth-Type mfa {\n\t\tif (!&State) {\n\t\t\tpap\n\t\t}\n\t\tmfa\n\t}\n\
         \tAuth-Type mfa_otp {\n\t\tmfa_otp\n\t}\n\tAuth-Type PAP {\n\t\tpap\n\t}\n}\n}\n"
            .to_string(),
    );
    let server = std::sync::Arc::new(Server::start(&module, &setup));

    let pushes: Vec<_> = push_users
        .iter()
        .map(|u| {
            let server = server.clone();
            let u = u.clone();
            std::thread::spawn(move || server.auth(&u, "pw"))
        })
        .collect();
    // While 50 pushes are pending (8 waiting in threads, the rest as challenges), TOTP logins go on.
    let deadline = Instant::now() + Duration::from_secs(5);
    while provider.created() < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(provider.created(), 50);
    common::settle_in_step(5);
    let now = common::now();
    let packets: Vec<String> = otp_users
        .iter()
        .map(|(u, seed)| {
            let code = mfa_core::factor::otp::hotp_code(seed, now / 30, 6, mfa_core::factor::otp::Algorithm::Sha1);
            format!("User-Name = \"{u}\", User-Password = \"{code}\"\n")
        })
        .collect();
    assert_eq!(server.send_many(&packets, 16), (100, 0, 0));

    let replies: Vec<_> = pushes.into_iter().map(|h| h.join().unwrap()).collect();
    let challenged = replies.iter().filter(|r| r.is_challenge()).count();
    let timed_out = replies.iter().filter(|r| r.message() == Some("No answer from your device in time")).count();
    assert_eq!((challenged, timed_out), (42, 8), "{replies:?}");
}

#[test]
fn a_wait_longer_than_max_request_time_stops_freeradius() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let setup = Setup::challenge_mode("push", &tokens(), USERS)
        .with(&format!("push {{\n url = \"{}\"\n timeout = 5\n wait = 25\n}}", provider.url()));
    let out = Server::start_failing(&module, &setup);
    assert!(out.contains("invalid 'push.wait'") && out.contains("max_request_time"), "{}", common::tail(&out, 20));
}

/// With the Redis store the call that waits for the push may also wait on Redis,
/// 3 x timeout_ms: 15 + 2 x 5 + 3 x 2 s outlasts max_request_time (30 s). No Redis
/// is needed: the check is made as the configuration is read.
#[test]
fn a_wait_that_with_the_redis_store_outlasts_max_request_time_stops_freeradius() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let setup = Setup::challenge_mode("push", &tokens(), USERS)
        .with(&format!("push {{\n url = \"{}\"\n timeout = 5\n wait = 15\n}}", provider.url()))
        .with("state_store = redis\nredis {\n\tserver = 127.0.0.1:1\n\ttimeout_ms = 2000\n}\n");
    let out = Server::start_failing(&module, &setup);
    assert!(
        out.contains("invalid 'push.wait'") && out.contains("6.0 s more on the Redis state store"),
        "{}",
        common::tail(&out, 20)
    );
}

#[test]
fn the_same_login_at_both_servers_of_a_pair_sends_one_push() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_secs(2)));
    let setup = Setup::challenge_mode("push", &tokens(), USERS)
        .file("mods-config/mfa/state.key", KEY)
        .with(&format!("push {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 20\n}}", provider.url()));
    let primary = std::sync::Arc::new(Server::start(&module, &setup));
    let secondary = std::sync::Arc::new(Server::start(&module, &setup));
    // The provider's idempotency key covers one push.wait window: stay clear of its edge.
    while common::now() % 20 > 14 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let first = {
        let primary = primary.clone();
        std::thread::spawn(move || primary.auth("alice", "pw-alice"))
    };
    std::thread::sleep(Duration::from_millis(300));
    let second = secondary.auth("alice", "pw-alice");
    assert!(second.is_accept(), "{second:?}");
    assert!(first.join().unwrap().is_accept());
    assert_eq!(provider.created(), 1, "a NAS failing over mid-push joins the same push");
}

/// `limits.pushes` with the local state journal: past N pushes started in the
/// window, a login gets the too-many message and the provider is not called.
#[test]
fn past_limits_pushes_a_login_is_refused_and_no_push_is_sent() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::ZERO));
    let setup = push_setup(&provider, "")
        .with("limits {\n pushes = 2\n window = 600\n}\nlockout {\n max_failures = 10\n duration = 600\n}");
    let server = Server::start(&module, &setup);
    for _ in 0..2 {
        let reply = server.auth("alice", "pw-alice");
        assert_eq!(reply.message(), Some("The login was denied on your device"), "{reply:?}");
    }
    let third = server.auth("alice", "pw-alice");
    assert!(third.is_reject(), "{third:?}");
    let message = third.message().unwrap_or_default();
    assert!(message.starts_with("Too many approval requests: try again in "), "{third:?}");
    assert_eq!(provider.created(), 2, "no third push");
    // Counted per user: bob still gets his.
    assert_eq!(server.auth("bob", "pw-bob").message(), Some("The login was denied on your device"));
    assert!(server.debug_log().contains("limits.pushes"), "the log names the limit");
}

/// A denied push counts toward the lockout like a wrong code (mode push, wait).
#[test]
fn denied_pushes_count_toward_the_lockout() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::ZERO));
    let setup = push_setup(&provider, "").with("lockout {\n max_failures = 2\n duration = 600\n}");
    let server = Server::start(&module, &setup);
    let first = server.auth("alice", "pw-alice");
    assert_eq!(first.message(), Some("The login was denied on your device"), "{first:?}");
    let second = server.auth("alice", "pw-alice");
    assert!(second.message().unwrap_or_default().starts_with("Too many failed attempts"), "{second:?}");
    provider.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    let third = server.auth("alice", "pw-alice");
    assert!(third.is_reject(), "a locked user gets no push: {third:?}");
    assert_eq!(provider.created(), 2);
}

/// approval = challenge: a push counts toward the lockout when it is sent, so
/// that pushes whose challenge nobody answers (whoever holds the password just
/// starts them) end in a lock; an approval resets the count as any success does.
#[test]
fn abandoned_challenge_pushes_count_toward_the_lockout() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let setup = push_setup(&provider, "approval = challenge").with("lockout {\n max_failures = 3\n duration = 600\n}");
    let server = Server::start(&module, &setup);

    // One push abandoned, the next approved: the count starts again.
    assert!(server.auth("bob", "pw-bob").is_challenge());
    let approved = server.auth("bob", "pw-bob");
    assert!(approved.is_challenge(), "{approved:?}");
    provider.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    assert!(server.answer("bob", "ok", approved.state()).is_accept());
    provider.set_behaviour(PushBehaviour::NeverAnswer);

    // Three challenges never answered: the third push locks, the fourth is not sent.
    let mut last = None;
    for _ in 0..3 {
        let started = server.auth("bob", "pw-bob");
        assert!(started.is_challenge(), "{started:?}");
        last = Some(started);
    }
    let created = provider.created();
    let locked = server.auth("bob", "pw-bob");
    assert!(locked.is_reject(), "{locked:?}");
    assert!(locked.message().unwrap_or_default().starts_with("Too many failed attempts"), "{locked:?}");
    assert_eq!(provider.created(), created, "a locked user gets no push");

    // The push that locked is on the device: it may still be approved, which unlocks.
    provider.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    let approved = server.answer("bob", "ok", last.unwrap().state());
    assert!(approved.is_accept(), "{approved:?}");
    // Unlocked: the next login is not refused as locked (limits.pushes, six pushes
    // in this test, refuses it now).
    let next = server.auth("bob", "pw-bob");
    assert!(next.message().unwrap_or_default().starts_with("Too many approval requests"), "{next:?}");
}

/// Number matching in the push's own text: `{number}` in push.message is the
/// number the challenge's prompt shows (approval = challenge); with approval =
/// wait there is no prompt and it renders as nothing.
#[test]
fn number_in_the_push_message() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let message = "message = \"Login to {client} for {user}? Match: {number}\"";
    let server = Server::start(&module, &push_setup(&provider, &format!("approval = challenge\n{message}")));
    let first = server.auth("bob", "pw-bob");
    assert!(first.is_challenge(), "{first:?}");
    let body = provider.last_create_body().unwrap();
    let number = body["number"].as_str().unwrap().to_string();
    assert!(first.message().unwrap().contains(&format!("numbered {number} ")), "{first:?}");
    assert_eq!(body["message"], format!("Login to localhost for bob? Match: {number}"));
    drop(server);

    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::ZERO));
    let server = Server::start(&module, &push_setup(&provider, message));
    server.auth("bob", "pw-bob");
    let body = provider.last_create_body().unwrap();
    assert_eq!(body["message"], "Login to localhost for bob? Match: ");
    assert!(body.get("number").is_none_or(|n| n.is_null()), "no number without a prompt: {body}");
}

/// `{nas}` in push.message is the NAS's name: its NAS-Identifier, else its
/// NAS-IP-Address, else the address the request came from.
#[test]
fn the_push_message_names_the_nas() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::ZERO));
    let server = Server::start(&module, &push_setup(&provider, "message = \"{user} at {nas} ({client})\""));
    for (attrs, nas) in [
        ("NAS-Identifier = \"vpn-gw-1\", NAS-IP-Address = 192.0.2.7", "vpn-gw-1"),
        ("NAS-IP-Address = 192.0.2.7", "192.0.2.7"),
        ("", "127.0.0.1"),
    ] {
        let attrs = if attrs.is_empty() { String::new() } else { format!(", {attrs}") };
        let reply = server.send(&format!("User-Name = \"alice\", User-Password = \"pw-alice\"{attrs}\n"));
        assert!(reply.is_reject(), "{reply:?}");
        let body = provider.last_create_body().unwrap();
        assert_eq!(body["message"], format!("alice at {nas} (localhost)"), "{attrs}");
    }
}

/// Length-prefixed parts under SHA-256, as the module hashed them before its
/// request ids were keyed (whoever read the provider's logs could test guesses).
fn unkeyed(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Issue 12 item 2: the `request_id` the provider receives is keyed (an HMAC
/// under a key derived from state_key): not the unkeyed SHA-256 of the login's
/// parts, and another with another key; and nothing in the push body is the
/// password or an unkeyed hash of it.
#[test]
fn the_push_request_id_is_keyed_and_the_body_holds_nothing_of_the_password() {
    let module = require_module!();
    const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n";
    // A provider each: one that already holds the (denied) push of an id would have
    // the next server send a push of its own under a fresh id.
    let providers: Vec<FakePush> = (0..3).map(|_| FakePush::start(PushBehaviour::DenyAfter(Duration::ZERO))).collect();
    let setup = |key: &str, provider: &FakePush| {
        Setup::challenge_mode("push", &tokens(), USERS).file("mods-config/mfa/state.key", key).with(&format!(
            "push {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 20\n}}\n\
             lockout {{\n max_failures = 0\n}}",
            provider.url()
        ))
    };
    let first = Server::start(&module, &setup(KEY, &providers[0]));
    let second = Server::start(&module, &setup(KEY, &providers[1]));
    let other = Server::start(&module, &setup(OTHER_KEY, &providers[2]));
    let (password, nas, session) = ("pw-alice", "127.0.0.1|10.0.0.1|nas1", "02-00-00-00-00-01|7");
    let login = format!(
        "User-Name = \"alice\", User-Password = \"{password}\", NAS-IP-Address = 10.0.0.1, \
         NAS-Identifier = \"nas1\", Calling-Station-Id = \"02-00-00-00-00-01\", NAS-Port = 7\n"
    );
    // One push.wait window for the three logins: stay clear of its edge.
    while common::now() % 20 > 14 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let window = common::now() / 20;
    let mut ids = Vec::new();
    for (server, provider) in [&first, &second, &other].into_iter().zip(&providers) {
        let reply = server.send(&login);
        assert_eq!(reply.message(), Some("The login was denied on your device"), "{reply:?}");
        assert_eq!(provider.created(), 1);
        let body = provider.last_create_body().unwrap();
        ids.push(body["request_id"].as_str().unwrap().to_string());

        // No field holds the password, or an unkeyed hash of it or of the login.
        let login_key = unkeyed(&[b"alice", nas.as_bytes(), session.as_bytes(), password.as_bytes()]);
        let mut hashes = vec![
            hex(&unkeyed(&[password.as_bytes()])),
            hex(&<sha2::Sha256 as sha2::Digest>::digest(password.as_bytes())),
            hex(&<sha2::Sha256 as sha2::Digest>::digest(format!("alice{password}").as_bytes())),
            hex(&login_key),
        ];
        for w in [window - 1, window, window + 1] {
            hashes.push(hex(&unkeyed(&[b"mfa", &login_key, &w.to_be_bytes()])));
        }
        let fields = body.as_object().unwrap();
        for (name, value) in fields {
            let text = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
            assert!(!text.contains(password), "{name} holds the password: {body}");
            for hash in &hashes {
                // The whole digest or its first half (the old ids were 16 bytes).
                assert!(!text.contains(&hash[..32]), "{name} is an unkeyed hash: {body}");
            }
        }
    }
    // The parts hashed above are the login's: the keyed id over them is the one sent,
    // so the unkeyed digests checked against are the ones that would have been sent.
    let keyed = |w: u64| {
        use hmac::{Hmac, Mac};
        let hmac = |key: &[u8], parts: &[&[u8]]| {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
            parts.iter().for_each(|p| mac.update(p));
            mac.finalize().into_bytes()
        };
        let state_key = data_encoding::HEXLOWER.decode(KEY.trim().as_bytes()).unwrap();
        let derived = hmac(&state_key, &[b"rlm_mfa derived key v1\0", b"push request id"]);
        let login_key = unkeyed(&[b"alice", nas.as_bytes(), session.as_bytes(), password.as_bytes()]);
        let mut parts: Vec<u8> = Vec::new();
        for part in [&b"mfa"[..], &login_key, &w.to_be_bytes()] {
            parts.extend((part.len() as u64).to_be_bytes());
            parts.extend(part);
        }
        hex(&hmac(&derived, &[&parts])[..16])
    };
    assert!([window - 1, window, window + 1].map(keyed).contains(&ids[0]), "{ids:?}");
    assert_eq!(ids[0], ids[1], "the same key gives the same id on either server of a pair");
    assert_ne!(ids[0], ids[2], "another state_key gives another id");
}

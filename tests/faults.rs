//! Backend faults: the push provider and the SMS/e-mail gateway refuse the
//! connection, stall, answer slowly, answer an HTTP error, garbage or a huge body,
//! or break off mid-answer. Each login ends within its configured bound with the
//! configured outcome, and afterwards every thread of a small pool answers
//! (tests/common/pool_probe.rs).
//!
//! Already covered elsewhere, not repeated here: push create answering 500, non-JSON,
//! a closed connection or nothing, in wait mode with both failmodes, and a 500
//! primary with a working secondary (tests/push.rs); a gateway answering 500 or
//! nothing (tests/challenge.rs).

mod common;
#[path = "common/pool_probe.rs"]
mod pool_probe;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::fake_gateway::{Behaviour, FakeGateway};
use common::fake_push::{FakePush, PushBehaviour};
use common::{Reply, Server, Setup};
use pool_probe::THREADS;

/// push.timeout and sms/email timeout, seconds.
const T: u64 = 2;
/// push.wait, seconds (the smallest allowed).
const WAIT: u64 = 5;
/// Slack for radclient, process start and a loaded machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// Answers this slow still count (under the timeout), and these do not (over it).
const JUST_UNDER: Duration = Duration::from_millis(1200);
const JUST_OVER: Duration = Duration::from_millis(2800);

const UNAVAILABLE: &str = "Approval by push is unavailable, try again later";
const NOT_SENT: &str = "The code could not be sent, try again later";
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A URL whose port nothing listens on: connections are refused.
fn closed_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

/// A listener that never accepts: the kernel completes the TCP handshake, then
/// nothing is ever said (a TLS handshake that stalls). Kept open while it lives.
fn silent_https() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// Users u0..u3 (password "pw") with nothing but push. `extra` comes first in
/// `push { }`: FreeRADIUS takes the first of a repeated item.
fn push_setup(url: &str, extra: &str) -> Setup {
    let users: Vec<(String, String)> = (0..THREADS).map(|i| (format!("u{i}"), "pw".to_string())).collect();
    let tokens: Vec<String> = users.iter().map(|(u, _)| format!(r#""{u}": {{}}"#)).collect();
    let mut setup = Setup::challenge_mode("push", &format!(r#"{{"users": {{{}}}}}"#, tokens.join(", ")), &[])
        .file("mods-config/mfa/state.key", KEY)
        // Each user starts many pushes here, most never approved (and a challenge push
        // counts toward the lockout when sent): no limit gets in the way of the faults.
        .with("limits {\n pushes = 0\n codes_sent = 0\n}\nlockout {\n max_failures = 0\n}")
        .with(&format!(
            "push {{\n {extra}\n url = \"{url}\"\n timeout = {T}\n poll_interval = 1\n wait = {WAIT}\n skip_failing = 30\n}}"
        ));
    setup.users = users;
    setup
}

/// One round per user, all at once (one per thread of the pool): each reply and how
/// long it took.
fn all_at_once<F>(server: &Server, send: F) -> Vec<(Reply, Duration)>
where
    F: Fn(&Server, usize) -> Reply + Sync,
{
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let send = &send;
                s.spawn(move || {
                    let started = Instant::now();
                    let reply = send(server, i);
                    (reply, started.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every reply is `expect`ed and came within `bound` (+ margin).
fn check(case: &str, replies: &[(Reply, Duration)], bound: Duration, expect: impl Fn(&Reply) -> bool) {
    for (reply, took) in replies {
        assert!(expect(reply), "{case}: unexpected {reply:?}");
        assert!(*took <= bound + MARGIN, "{case}: answered after {took:?}, bound {bound:?} + {MARGIN:?}");
    }
}

fn accepted(r: &Reply) -> bool {
    r.is_accept()
}

fn unavailable(r: &Reply) -> bool {
    r.is_reject() && r.message() == Some(UNAVAILABLE)
}

/// Faults of the provider before the push exists: failmode decides.
const CREATE_FAULTS: [PushBehaviour; 8] = [
    PushBehaviour::NotHttp,
    PushBehaviour::EndlessHeader,
    PushBehaviour::WrongJson,
    PushBehaviour::Huge,
    PushBehaviour::CutBody,
    PushBehaviour::StallBody,
    PushBehaviour::Trickle,
    PushBehaviour::Status(503),
];

fn failmode_outcome(safe: bool) -> fn(&Reply) -> bool {
    if safe {
        accepted
    } else {
        unavailable
    }
}

fn push_wait_faults(safe: bool) {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let failmode = if safe { "failmode = safe" } else { "failmode = secure" };
    let server = pool_probe::start(&module, push_setup(&provider.url(), failmode));
    let login = |s: &Server, i: usize| s.auth(&format!("u{i}"), "pw");
    let outcome = failmode_outcome(safe);

    for fault in CREATE_FAULTS {
        provider.set_behaviour(fault);
        check(&format!("{fault:?}"), &all_at_once(&server, login), secs(T), outcome);
    }
    provider.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    provider.set_delay(JUST_OVER);
    check("slower than the timeout", &all_at_once(&server, login), secs(T), outcome);
    // A refusal (4xx) is no outage: never an accept, whatever failmode says.
    provider.set_delay(Duration::ZERO);
    for code in [400, 403, 429] {
        provider.set_behaviour(PushBehaviour::Status(code));
        check(&format!("HTTP {code}"), &all_at_once(&server, login), secs(T), unavailable);
    }
    // Slow but within the timeout on every call: the push works.
    provider.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    provider.set_delay(JUST_UNDER);
    check("slow within the timeout", &all_at_once(&server, login), secs(WAIT + 2 * T), accepted);
    provider.set_delay(Duration::ZERO);

    // The push is sent, then the provider fails: the user may have seen it and ignored
    // it, so no failmode lets the login in. Bound: wait + 2 x timeout.
    for fault in [PushBehaviour::StallBody, PushBehaviour::Status(500)] {
        provider.set_behaviour(PushBehaviour::NeverAnswer);
        // Creates, counted as sent (a create may join a push of an earlier round).
        let creates = || provider.requests().iter().filter(|r| r.method == "POST").count();
        let before = creates();
        let replies = std::thread::scope(|s| {
            let waiting = s.spawn(|| all_at_once(&server, login));
            let deadline = Instant::now() + secs(T + 2);
            while creates() < before + THREADS && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(creates() >= before + THREADS, "the pushes were not sent");
            provider.set_behaviour(fault);
            waiting.join().unwrap()
        });
        check(&format!("{fault:?} after the push was sent"), &replies, secs(WAIT + 2 * T), unavailable);
    }
    let log = server.debug_log();
    assert!(log.contains("reading the push's status"), "the log says the push failed after it was sent");
    assert!(log.contains("answered HTTP 429"), "the log names the provider's status");
    if safe {
        assert!(log.contains("on the first factor alone"));
    }
    pool_probe::assert_all_threads_free(&server, 0);
}

#[test]
fn push_wait_provider_faults_with_failmode_secure() {
    push_wait_faults(false);
}

#[test]
fn push_wait_provider_faults_with_failmode_safe() {
    push_wait_faults(true);
}

#[test]
fn push_wait_provider_refusing_connections_or_silent_after_connecting() {
    let module = require_module!();
    let (_listener, silent) = silent_https();
    let login = |s: &Server, i: usize| s.auth(&format!("u{i}"), "pw");
    for (url, cause) in [(closed_url(), "connection refused"), (silent, "did not answer in time")] {
        for safe in [false, true] {
            let failmode = if safe { "failmode = safe" } else { "failmode = secure" };
            let server = pool_probe::start(&module, push_setup(&url, failmode));
            check(cause, &all_at_once(&server, login), secs(T), failmode_outcome(safe));
            assert!(server.debug_log().contains(cause), "the log names the cause: {cause}");
            pool_probe::assert_all_threads_free(&server, 0);
        }
    }
}

#[test]
fn secondary_provider_behind_a_refusing_stalling_or_hanging_primary() {
    let module = require_module!();
    let login = |s: &Server, i: usize| s.auth(&format!("u{i}"), "pw");
    let secondary = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));

    // Primary refuses connections: the secondary answers, at no cost of a timeout.
    let server =
        pool_probe::start(&module, push_setup(&closed_url(), &format!("secondary_url = \"{}\"", secondary.url())));
    check("primary refused", &all_at_once(&server, login), secs(WAIT), accepted);
    // Both down: failmode secure, within one timeout (the primary is being skipped).
    secondary.set_behaviour(PushBehaviour::StallBody);
    check("primary refused, secondary stalled", &all_at_once(&server, login), secs(T), unavailable);
    pool_probe::assert_all_threads_free(&server, 0);
    drop(server);

    // Primary and secondary both hang: two timeouts at most. Then both are being
    // skipped, and a login tries only the one whose skip ends first: one timeout.
    let primary = FakePush::start(PushBehaviour::Hang);
    secondary.set_behaviour(PushBehaviour::Hang);
    let setup = push_setup(&primary.url(), &format!("secondary_url = \"{}\"", secondary.url()));
    let server = pool_probe::start(&module, setup);
    check("both hang", &all_at_once(&server, login), secs(2 * T), unavailable);
    let calls = (primary.calls(), secondary.calls());
    check("both hang, both skipped", &all_at_once(&server, login), secs(T), unavailable);
    let tried = (primary.calls() - calls.0) + (secondary.calls() - calls.1);
    assert_eq!(tried, THREADS, "one provider tried per login while both are skipped");
    pool_probe::assert_all_threads_free(&server, 1);
}

#[test]
fn push_challenge_with_a_hanging_primary_ends_on_the_secondary() {
    let module = require_module!();
    let primary = FakePush::start(PushBehaviour::Hang);
    let secondary = FakePush::start(PushBehaviour::NeverAnswer);
    let extra = format!("approval = challenge\n secondary_url = \"{}\"", secondary.url());
    let server = pool_probe::start(&module, push_setup(&primary.url(), &extra));
    let first = |s: &Server, i: usize| s.auth(&format!("u{i}"), "pw");
    // The primary costs one timeout, then the secondary sends the push.
    let challenges = all_at_once(&server, first);
    check("first round", &challenges, secs(T), Reply::is_challenge);
    secondary.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    // The answer round finds the push again: the skipped primary is not waited for.
    let answer = |s: &Server, i: usize| s.answer(&format!("u{i}"), "ok", challenges[i].0.state());
    check("answer round", &all_at_once(&server, answer), secs(T), accepted);
    assert_eq!(secondary.created(), THREADS);
    pool_probe::assert_all_threads_free(&server, 0);
}

/// Regression: a push made by the secondary while the primary was down, answered
/// once the primary works again, was looked for at the primary, which made a second
/// push and answered "Not approved yet" though the user had approved.
#[test]
fn a_challenge_push_made_by_the_secondary_is_found_there_when_the_primary_is_back() {
    let module = require_module!();
    let primary = FakePush::start(PushBehaviour::Hang);
    let secondary = FakePush::start(PushBehaviour::NeverAnswer);
    let extra = format!("approval = challenge\n skip_failing = 1\n secondary_url = \"{}\"", secondary.url());
    let server = Server::start(&module, &push_setup(&primary.url(), &extra));
    let first = server.auth("u0", "pw");
    assert!(first.is_challenge(), "{first:?}");
    assert_eq!(secondary.created(), 1);
    // The primary works again and its skip is over; the user approves on the device.
    primary.set_behaviour(PushBehaviour::NeverAnswer);
    secondary.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    std::thread::sleep(Duration::from_millis(1500));
    let reply = server.answer("u0", "ok", first.state());
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(primary.created(), 0, "no second push");
}

fn push_challenge_faults(safe: bool) {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let failmode = if safe { "approval = challenge\n failmode = safe" } else { "approval = challenge" };
    let server = pool_probe::start(&module, push_setup(&provider.url(), failmode));
    let first = |s: &Server, i: usize| s.auth(&format!("u{i}"), "pw");
    let outcome = failmode_outcome(safe);

    // The first round sends the push: failmode decides when it cannot.
    for fault in CREATE_FAULTS {
        provider.set_behaviour(fault);
        check(&format!("{fault:?} at the first round"), &all_at_once(&server, first), secs(T), outcome);
    }
    provider.set_behaviour(PushBehaviour::NeverAnswer);
    provider.set_delay(JUST_OVER);
    check("slower than the timeout at the first round", &all_at_once(&server, first), secs(T), outcome);
    provider.set_delay(Duration::ZERO);
    provider.set_behaviour(PushBehaviour::Status(404));
    check("HTTP 404 at the first round", &all_at_once(&server, first), secs(T), unavailable);

    // The answer round asks how the push ended (find it again, then its status): a
    // provider failing there lets no one in. Bound: two calls.
    for fault in [
        PushBehaviour::Hang,
        PushBehaviour::CutBody,
        PushBehaviour::Trickle,
        PushBehaviour::WrongJson,
        PushBehaviour::Status(500),
    ] {
        provider.set_behaviour(PushBehaviour::NeverAnswer);
        let challenges = all_at_once(&server, first);
        check("challenge", &challenges, secs(T), Reply::is_challenge);
        provider.set_behaviour(fault);
        let answer = |s: &Server, i: usize| s.answer(&format!("u{i}"), "ok", challenges[i].0.state());
        check(&format!("{fault:?} at the answer round"), &all_at_once(&server, answer), secs(2 * T), unavailable);
    }

    // Slow within the timeout, both rounds: approved.
    provider.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    provider.set_delay(JUST_UNDER);
    let challenges = all_at_once(&server, first);
    check("slow first round", &challenges, secs(T), Reply::is_challenge);
    let answer = |s: &Server, i: usize| s.answer(&format!("u{i}"), "ok", challenges[i].0.state());
    check("slow answer round", &all_at_once(&server, answer), secs(2 * T), accepted);
    provider.set_delay(Duration::ZERO);
    pool_probe::assert_all_threads_free(&server, 0);
}

#[test]
fn push_challenge_provider_faults_with_failmode_secure() {
    push_challenge_faults(false);
}

#[test]
fn push_challenge_provider_faults_with_failmode_safe() {
    push_challenge_faults(true);
}

/// Users g0..g3 with an app, an SMS number and an e-mail address: a menu of three.
fn gateway_setup(sms_url: &str, email_url: &str) -> Setup {
    let users: Vec<(String, String)> = (0..THREADS).map(|i| (format!("g{i}"), "pw".to_string())).collect();
    let tokens: Vec<String> = users
        .iter()
        .map(|(u, _)| {
            format!(
                r#""{u}": {{"tokens": [{{"serial": "T", "type": "totp", "secret": "{}"}}], "sms": "+4512345612", "email": "{u}@example.com"}}"#,
                common::SEED_B32
            )
        })
        .collect();
    let body = r#"'{"to": "{destination}", "text": "{message}", "user": "{user}"}'"#;
    let mut setup =
        Setup::challenge_mode("password-then-otp", &format!(r#"{{"users": {{{}}}}}"#, tokens.join(", ")), &[])
            .file("mods-config/mfa/state.key", KEY)
            .with("limits {\n pushes = 0\n codes_sent = 0\n}")
            .with(&format!(
                "sms {{\n url = \"{sms_url}\"\n body = {body}\n timeout = {T}\n}}\n\
             email {{\n url = \"{email_url}\"\n body = {body}\n timeout = {T}\n}}\n"
            ));
    setup.users = users;
    setup
}

/// Users g0 and g1 choose SMS (2), g2 and g3 e-mail (3); the reply to the choice.
fn choose_sms_or_email(server: &Server, i: usize) -> (Reply, Duration) {
    let menu = server.auth(&format!("g{i}"), "pw");
    assert_eq!(menu.lines().len(), 5, "{menu:?}");
    let started = Instant::now();
    let reply = server.answer(&format!("g{i}"), if i < THREADS / 2 { "2" } else { "3" }, menu.state());
    (reply, started.elapsed())
}

fn all_choose(server: &Server) -> Vec<(Reply, Duration)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS).map(|i| s.spawn(move || choose_sms_or_email(server, i))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The code the gateway was last sent for `user`.
fn code_sent_to(gateway: &FakeGateway, user: &str) -> String {
    let requests = gateway.requests();
    let body: serde_json::Value = requests
        .iter()
        .rev()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap())
        .find(|b| b["user"] == user)
        .unwrap_or_else(|| panic!("nothing was sent for {user}"));
    let text = body["text"].as_str().unwrap();
    text.trim_start_matches("Your login code is ").chars().take_while(char::is_ascii_digit).collect()
}

#[test]
fn sms_and_email_gateway_faults_in_the_menu() {
    let module = require_module!();
    let sms = FakeGateway::start(Behaviour::Accept);
    let email = FakeGateway::start(Behaviour::Accept);
    let server = pool_probe::start(&module, gateway_setup(&sms.url(), &email.url()));
    let not_sent = |r: &Reply| r.is_reject() && r.message() == Some(NOT_SENT);

    let set = |b: Behaviour, delay: Duration| {
        for g in [&sms, &email] {
            g.set_behaviour(b);
            g.set_delay(delay);
        }
    };
    for fault in [
        Behaviour::Close,
        Behaviour::NotHttp,
        Behaviour::EndlessHeader,
        Behaviour::Status(400),
        Behaviour::Status(401),
        Behaviour::Status(429),
        Behaviour::Status(503),
        Behaviour::CutBody,
        Behaviour::StallBody,
        Behaviour::Trickle,
    ] {
        set(fault, Duration::ZERO);
        check(&format!("{fault:?}"), &all_choose(&server), secs(T), not_sent);
    }
    set(Behaviour::Accept, JUST_OVER);
    check("slower than the timeout", &all_choose(&server), secs(T), not_sent);

    // A 2xx is a sent message, whatever its body says: the gateway contract is the status.
    for (case, behaviour, delay) in [
        ("slow within the timeout", Behaviour::Accept, JUST_UNDER),
        ("2xx with garbage", Behaviour::Garbage, Duration::ZERO),
        ("2xx with a huge body", Behaviour::Huge, Duration::ZERO),
    ] {
        set(behaviour, delay);
        let prompts = all_choose(&server);
        check(case, &prompts, secs(T), |r| {
            r.is_challenge() && r.message().is_some_and(|m| m.starts_with("Enter the code sent to"))
        });
        for (i, (prompt, _)) in prompts.iter().enumerate() {
            let user = format!("g{i}");
            let code = code_sent_to(if i < THREADS / 2 { &sms } else { &email }, &user);
            let reply = server.answer(&user, &code, prompt.state());
            assert!(reply.is_accept(), "{case}: the code sent is accepted: {reply:?}");
        }
    }
    let log = server.debug_log();
    for cause in [
        "answered HTTP 429",
        "did not answer in time",
        "closed before a complete answer",
        "its answer is not valid HTTP",
    ] {
        assert!(log.contains(cause), "no log line says {cause:?}");
    }
    pool_probe::assert_all_threads_free(&server, 0);
}

#[test]
fn sms_and_email_gateways_refusing_connections_or_silent_after_connecting() {
    let module = require_module!();
    // SMS: nothing listens. E-mail: https to a listener that never says a word.
    let (_listener, silent) = silent_https();
    let server = pool_probe::start(&module, gateway_setup(&closed_url(), &format!("{silent}/send")));
    let not_sent = |r: &Reply| r.is_reject() && r.message() == Some(NOT_SENT);
    check("refused or silent", &all_choose(&server), secs(T), not_sent);
    let log = server.debug_log();
    assert!(log.contains("connection refused") && log.contains("did not answer in time"), "the log names both causes");
    pool_probe::assert_all_threads_free(&server, 0);
}

/// Regression: with a secondary, creating a push may cost two timeouts before the
/// cancel's: 3 x 11 s outlasts max_request_time (30 s) though wait + 2 x timeout
/// (27 s) does not. Such a login was answered after 32 s; now the server refuses
/// the configuration.
#[test]
fn a_secondary_whose_timeouts_outlast_max_request_time_stops_freeradius() {
    let module = require_module!();
    let url = closed_url();
    let setup = push_setup(&url, &format!("timeout = 11\n secondary_url = \"{}\"", closed_url()));
    let out = Server::start_failing(&module, &setup);
    assert!(
        out.contains("invalid 'push.wait'") && out.contains("2 providers x timeout 11"),
        "{}",
        common::tail(&out, 20)
    );
    // One provider: 5 + 2 x 11 = 27 s, which max_request_time allows.
    Server::start(&module, &push_setup(&url, "timeout = 11"));
}

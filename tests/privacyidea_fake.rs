//! The privacyIDEA backend in a real FreeRADIUS against a fake privacyIDEA
//! that speaks its documented API: every flow, the bad answers a broken or
//! hostile server can give, failover, TLS and connection reuse. The same flows
//! run against a real privacyIDEA in tests/privacyidea.rs.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::fake_privacyidea::{FakePrivacyIdea, PiBehaviour, GOOD_PASS, MAIL_CODE};
use common::{Server, Setup};

fn site() -> String {
    std::fs::read_to_string(common::repo().join("freeradius-conf/sites-available/mfa-privacyidea")).unwrap()
}

/// A server whose mfa instance asks `urls`; `items` go first inside `privacyidea { }`
/// (FreeRADIUS takes the first of a repeated item), `extra` inside `mfa { }`.
fn pi_setup(urls: &str, items: &str, extra: &str) -> Setup {
    let mut setup = Setup::otp_mode(r#"{"users": {}}"#).with(&format!(
        "backend = privacyidea\nprivacyidea {{\n{items}\n\turl = \"{urls}\"\n\ttimeout = 2\n\tpoll_wait = 6\n\
         \trealms {{\n\t\texample.com = corp\n\t}}\n}}\n\
         reply Filter-Id {{\n\tfrom = \"user.groups\"\n\tmatch = \"^vpn-(.*)$\"\n\tprefix = \"grp-\"\n}}\n{extra}"
    ));
    setup.site = Some(site());
    setup
}

#[test]
fn pin_and_code_accept_with_mapped_reply_attributes() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    let reply = server.auth("alice@example.com", GOOD_PASS);
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(reply.attr("Filter-Id"), Some("grp-admins"));
    let sent = &pi.requests()[0];
    assert!(sent.body.contains("user=alice") && sent.body.contains("realm=corp"), "{}", sent.body);
    assert!(sent.header("User-Agent").is_some_and(|ua| ua.starts_with("rlm_mfa/")));
}

/// With `stats { file }`, each call to privacyIDEA is timed (`call="privacyidea"`: as
/// many as the fake received) and privacyIDEA unreachable counts as a provider failure.
#[test]
fn privacyidea_calls_are_timed_and_their_failures_counted() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let stats = "stats {\n file = ${confdir}/mfa.prom\n interval = 1\n}";
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", stats));
    let file = server.dir.join("mfa.prom");
    assert!(server.auth("alice@example.com", GOOD_PASS).is_accept());
    assert!(server.auth("alice@example.com", "wrong").is_reject());
    let calls = pi.requests().len() as f64;
    let count = r#"rlm_mfa_call_duration_seconds_count{module="mfa",call="privacyidea"}"#;
    assert_eq!(common::prom::wait_for(&file, count, calls), Some(calls), "every call timed");
    let failures = r#"rlm_mfa_failures_total{module="mfa",kind="provider"}"#;
    assert_eq!(common::prom::sample(&file, failures), Some(0.0), "a refusal is an answer");
    drop(server);

    let down = Server::start(&dir, &pi_setup("http://127.0.0.1:1", "", stats));
    let file = down.dir.join("mfa.prom");
    assert!(down.auth("alice@example.com", GOOD_PASS).is_reject());
    assert_eq!(common::prom::wait_for(&file, failures, 1.0), Some(1.0), "privacyIDEA unreachable: one failure");
}

#[test]
fn rejects_say_the_configured_words_and_the_log_says_why() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    let wrong = server.auth("alice", "pin000000");
    assert!(wrong.is_reject());
    assert_eq!(wrong.message(), Some("Wrong user name, PIN or code"));
    let unknown = server.auth("nobody", GOOD_PASS);
    assert!(unknown.is_reject());
    assert_eq!(unknown.message(), Some("Wrong user name, PIN or code"), "no hint that the user does not exist");
    let wrong_realm = server.auth("alice@elsewhere.org", GOOD_PASS);
    assert!(wrong_realm.is_reject());
    let log = server.debug_log();
    assert!(log.contains("wrong otp pin") && log.contains("ERR904"), "the reasons reach the log");
    assert!(!log.contains("pin000000") && !log.contains(GOOD_PASS), "no password in the log");
}

#[test]
fn an_email_challenge_round_trip_with_a_sealed_state() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    let challenge = server.auth("mailuser", "pin");
    assert!(challenge.is_challenge(), "{challenge:?}");
    assert_eq!(challenge.message(), Some("Enter the OTP from the email"));
    let state = challenge.state().to_string();
    let accept = server.answer("mailuser", MAIL_CODE, &state);
    assert!(accept.is_accept(), "{accept:?}");
    // Used once; then refused, as are a State for another user and one we never issued.
    assert!(server.answer("mailuser", MAIL_CODE, &state).is_reject());
    let again = server.auth("mailuser", "pin");
    assert!(server.answer("alice", MAIL_CODE, again.state()).is_reject());
    let forged = server.answer("mailuser", MAIL_CODE, "0x3130303030303030303030303030303030303032");
    assert!(forged.is_reject());
    let forwarded = pi.requests().iter().filter(|r| r.body.contains("transaction_id")).count();
    assert_eq!(forwarded, 1, "only the one good answer carried a transaction id");
}

#[test]
fn a_push_approved_while_the_request_waits() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    let approved = thread::scope(|s| {
        s.spawn(|| {
            let started = Instant::now();
            while !pi.answer_push("pushuser", true) {
                assert!(started.elapsed() < Duration::from_secs(10), "no push was sent");
                thread::sleep(Duration::from_millis(100));
            }
        });
        server.auth("pushuser", "pin")
    });
    assert!(approved.is_accept(), "{approved:?}");
    let finalised = pi
        .requests()
        .iter()
        .any(|r| r.body.contains("transaction_id") && r.body.split('&').any(|field| field == "pass="));
    assert!(finalised, "the login was finalised with an empty pass: {:?}", pi.requests());
}

#[test]
fn a_declined_push_rejects_and_an_unanswered_one_times_out() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    let declined = thread::scope(|s| {
        s.spawn(|| {
            while !pi.answer_push("pushuser", false) {
                thread::sleep(Duration::from_millis(100));
            }
        });
        server.auth("pushuser", "pin")
    });
    assert!(declined.is_reject());
    assert_eq!(declined.message(), Some("The login was denied on your device"));
    let started = Instant::now();
    let unanswered = server.auth("pushuser2", "pin");
    assert!(unanswered.is_reject(), "{unanswered:?}");
    assert_eq!(unanswered.message(), Some("No answer from your device in time"));
    assert!(started.elapsed() < Duration::from_secs(6 + 2 * 2 + 3), "ended within poll_wait and the calls' bound");
}

#[test]
fn challenge_mode_polls_on_the_empty_answer_and_takes_a_typed_code() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "\tpoll = challenge", ""));
    let first = server.auth("pushuser", "pin");
    assert!(first.is_challenge(), "{first:?}");
    let pending = server.answer("pushuser", "", first.state());
    assert!(pending.is_challenge(), "not approved yet: {pending:?}");
    assert!(pi.answer_push("pushuser", true));
    assert!(server.answer("pushuser", "", pending.state()).is_accept());
    // Or the code typed instead of approving.
    let again = server.auth("pushuser", "pin");
    assert!(server.answer("pushuser", "123456", again.state()).is_accept());
}

#[test]
fn bad_answers_reject_within_the_bound_and_the_next_login_works() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    for behaviour in [
        PiBehaviour::Error500,
        PiBehaviour::NotJson,
        PiBehaviour::ChallengeWithoutId,
        PiBehaviour::Huge,
        PiBehaviour::Slow(Duration::from_secs(5)),
        PiBehaviour::Close,
    ] {
        pi.set(behaviour);
        let started = Instant::now();
        let reply = server.auth("alice", GOOD_PASS);
        assert!(reply.is_reject(), "{behaviour:?}: {reply:?}");
        assert!(
            reply.message().is_some_and(|m| m.contains("unavailable")),
            "{behaviour:?}: the user is told to try later, not why: {reply:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2 + 3), "{behaviour:?} ended within timeout");
        pi.set(PiBehaviour::Normal);
        assert!(server.auth("alice", GOOD_PASS).is_accept(), "after {behaviour:?}");
    }
}

#[test]
fn a_failing_server_is_skipped_for_the_next() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    // Nothing listens on port 1 of loopback: connection refused.
    let server = Server::start(&dir, &pi_setup(&format!("http://127.0.0.1:1 {}", pi.url()), "", ""));
    assert!(server.auth("alice", GOOD_PASS).is_accept());
    assert!(server.auth("alice", GOOD_PASS).is_accept());
    assert!(server.debug_log().contains("connection refused"));
}

/// A server that never answers costs the first login its `timeout`, then the next
/// server answers it; later logins pass the silent one over (`skip_failing`).
#[test]
fn a_silent_server_costs_one_timeout_and_is_skipped_for_the_next() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    // The kernel accepts connections into the backlog; nothing ever answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let urls = format!("http://{} {}", silent.local_addr().unwrap(), pi.url());
    let server = Server::start(&dir, &pi_setup(&urls, "", ""));
    // Connections the module opened to the silent server (queued, never answered).
    silent.set_nonblocking(true).unwrap();
    let connections = || std::iter::from_fn(|| silent.accept().ok()).count();
    let first = server.auth("alice", GOOD_PASS);
    assert!(first.is_accept(), "{first:?}");
    assert_eq!(pi.requests().len(), 1);
    assert_eq!(connections(), 1, "the first login tried the silent server");
    assert!(server.auth("alice", GOOD_PASS).is_accept());
    assert_eq!(pi.requests().len(), 2);
    assert_eq!(connections(), 0, "the second login passed it over");
    let log = server.debug_log();
    assert!(
        log.contains(&silent.local_addr().unwrap().to_string()),
        "the silent server is named: {}",
        common::tail(&log, 20)
    );
}

#[test]
fn connections_are_reused_unless_told_not_to() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    for _ in 0..5 {
        assert!(server.auth("alice", GOOD_PASS).is_accept());
    }
    assert_eq!(pi.connections(), 1, "five logins over one connection");

    let fresh = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&fresh.url(), "\treuse_connections = no", ""));
    for _ in 0..5 {
        assert!(server.auth("alice", GOOD_PASS).is_accept());
    }
    assert_eq!(fresh.connections(), 5);
}

#[test]
fn concurrent_logins_keep_their_connections_for_the_next_ones() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    // Slow answers keep the 8 logins of a burst in flight together, each on a connection.
    pi.set(PiBehaviour::Slow(Duration::from_millis(300)));
    let burst: Vec<String> =
        (0..8).map(|i| format!("User-Name = \"user{i}\", User-Password = \"{GOOD_PASS}\"\n")).collect();
    for _ in 0..3 {
        assert_eq!(server.send_many(&burst, 8), (8, 0, 0));
    }
    // Every connection of the first burst is kept: the later bursts open none.
    assert!(pi.connections() <= 8, "{} connections for 3 bursts of 8", pi.connections());
}

#[test]
fn broken_configuration_stops_freeradius_naming_the_item() {
    let dir = require_module!();
    for (items, extra, item) in [
        ("\turl = \"ftp://x\"", "", "privacyidea.url"),
        ("\tca_file = /nonexistent.pem", "", "privacyidea.ca_file"),
        ("\tpoll = sometimes", "", "privacyidea.poll"),
        ("", "reply Foo-Bar-Baz {\n\tfrom = serial\n}", "Foo-Bar-Baz"),
        ("", "reply Reply-Message {\n\tfrom = serial\n\tmatch = \"(\"\n}", "reply"),
        ("", "reply Class {\n\tform = serial\n}", "form"),
    ] {
        let setup = pi_setup("http://127.0.0.1:1", items, extra);
        let out = Server::start_failing(&dir, &setup);
        assert!(out.contains(item), "{items}{extra}: {item} not named in:\n{}", common::tail(&out, 20));
    }
}

#[test]
fn https_is_verified() {
    let dir = require_module!();
    // No TLS server is there: what matters is that an https URL with the
    // system's CAs starts, and a bad CA file is refused (above).
    let server = Server::start(&dir, &pi_setup("https://127.0.0.1:1", "", ""));
    let reply = server.auth("alice", GOOD_PASS);
    assert!(reply.is_reject());
}

#[test]
fn a_resent_push_login_joins_the_first_and_triggers_one_push() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "", ""));
    let packet = "User-Name = \"pushuser\", User-Password = \"pin\", Calling-Station-Id = \"10.0.0.7\"\n".to_string();
    let (accepted, rejected, lost) = thread::scope(|s| {
        s.spawn(|| {
            let started = Instant::now();
            while !pi.answer_push("pushuser", true) {
                assert!(started.elapsed() < Duration::from_secs(10), "no push was sent");
                thread::sleep(Duration::from_millis(100));
            }
        });
        // Two copies with different RADIUS IDs, in flight at once.
        server.send_many(&[packet.clone(), packet], 2)
    });
    assert_eq!((accepted, rejected, lost), (2, 0, 0));
    let triggers =
        pi.requests().iter().filter(|r| r.path == "/validate/check" && !r.body.contains("transaction_id")).count();
    assert_eq!(triggers, 1, "one /validate/check triggered the push");
}

/// Waits until the debug log holds `text` at least `count` times.
fn wait_for_log(server: &Server, text: &str, count: usize) {
    let started = Instant::now();
    while server.debug_log().matches(text).count() < count {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no {text:?} in the log:\n{}",
            common::tail(&server.debug_log(), 40)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_hup_reloads_the_configuration_and_a_push_waiting_across_it_ends_well() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let server = Server::start(&dir, &pi_setup(&pi.url(), "\tpoll_wait = 20", ""));
    assert_eq!(server.auth("alice", "wrong").message(), Some("Wrong user name, PIN or code"));
    // FreeRADIUS ignores a HUP within 2 s of loading a module, and reloads only files
    // whose modification time (in seconds) changed.
    thread::sleep(Duration::from_millis(3100));

    let reply = thread::scope(|s| {
        let waiting = s.spawn(|| server.auth("pushuser", "pin"));
        // The push is waiting in the first instance's engine when the HUP replaces it.
        let started = Instant::now();
        while !pi.requests().iter().any(|r| r.path.starts_with("/validate/polltransaction")) {
            assert!(started.elapsed() < Duration::from_secs(10), "no push was polled");
            thread::sleep(Duration::from_millis(50));
        }
        let conf = std::fs::read_to_string(server.module_conf_path()).unwrap();
        let changed = conf.replacen("mfa {\n", "mfa {\nmessages {\n\trejected = \"Login refused\"\n}\n", 1);
        std::fs::write(server.module_conf_path(), changed).unwrap();
        server.hup();
        wait_for_log(&server, "Reloaded module \"mfa\"", 1);
        assert!(pi.answer_push("pushuser", true));
        waiting.join().unwrap()
    });
    assert!(reply.is_accept(), "the push begun before the HUP ends with its answer: {reply:?}");
    assert_eq!(server.auth("alice", "wrong").message(), Some("Login refused"), "the new configuration is in use");
}

#[test]
fn the_api_key_is_sent_in_its_header_and_never_logged() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    let key = "pi-api-key-5f3c9a7e1d";
    let items = format!("\tapi_key = \"{key}\"\n\tapi_key_header = \"X-API-Key\"");
    let server = Server::start(&dir, &pi_setup(&pi.url(), &items, ""));
    assert!(server.auth("alice", GOOD_PASS).is_accept());
    assert!(server.auth("alice", "pin000000").is_reject());
    assert_eq!(pi.requests()[0].header("X-API-Key"), Some(key));
    let log = server.debug_log();
    assert!(!log.contains(key), "the API key is in the debug log");
    assert!(!log.contains(GOOD_PASS) && !log.contains("pin000000"), "a password is in the debug log");
}

#[test]
fn the_shipped_file_with_backend_privacyidea_starts_on_a_stock_server() {
    let dir = require_module!();
    let pi = FakePrivacyIdea::start();
    // The shipped mods-available/mfa with only the backend and the URL set: its
    // defaults must fit the stock max_request_time of 30 s.
    let shipped = std::fs::read_to_string(common::repo().join("freeradius-conf/mods-available/mfa")).unwrap();
    let module = shipped.replacen("#\tbackend = local", "\tbackend = privacyidea", 1).replacen(
        "#\t\turl = \"https://pi1.example.com https://pi2.example.com\"",
        &format!("\t\turl = \"{}\"", pi.url()),
        1,
    );
    assert!(
        module.contains("backend = privacyidea") && module.contains(&pi.url()),
        "the shipped file changed its comments"
    );
    let mut setup = Setup::otp_mode(r#"{"users": {}}"#);
    setup.site = Some(site());
    setup.files.push(("mods-enabled/mfa".into(), module));
    let server = Server::start(&dir, &setup);
    assert!(server.auth("alice", GOOD_PASS).is_accept());
}

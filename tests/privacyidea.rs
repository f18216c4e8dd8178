//! The privacyidea backend in a real FreeRADIUS against a real privacyIDEA 3.14
//! (tests/common/privacyidea.rs starts one per test; scripts/privacyidea.sh installs
//! it): HOTP and TOTP, PIN plus code, realms, e-mail, SMS and challenge_response
//! challenges, push approved and declined on a simulated phone, reply attributes
//! from privacyIDEA's answer, user not found, wrong realm, server down; a code
//! re-sent to the other server of a farm (a real Redis) while privacyIDEA is
//! slow gets the first server's answer.
//!
//! The same flows run against a fake in tests/privacyidea_fake.rs, with the bad
//! answers a real server does not give on demand.

mod common;
#[path = "common/privacyidea.rs"]
mod privacyidea;

use std::thread;
use std::time::Duration;

use common::slow_relay::SlowRelay;
use common::{now, settle_in_step, totp_at, Reply, Server, Setup};
use privacyidea::{PrivacyIdea, RFC_HOTP, RFC_KEY_HEX};

/// A FreeRADIUS whose mfa instance asks `pi`; generous bounds for a loaded machine
/// (wait 12 + 3 x 5 < the test server's max_request_time of 30).
fn start(module: &std::path::Path, pi: &PrivacyIdea, poll: &str) -> Server {
    start_with(module, pi, poll, "")
}

/// As `start`, with more items in `privacyidea { }`.
fn start_with(module: &std::path::Path, pi: &PrivacyIdea, poll: &str, items: &str) -> Server {
    Server::start(module, &setup(pi.url(), poll, items))
}

/// The configuration `start_with` starts, asking privacyIDEA at `url`.
fn setup(url: &str, poll: &str, items: &str) -> Setup {
    let mut setup = Setup::otp_mode(r#"{"users": {}}"#).with(&format!(
        "backend = privacyidea\nprivacyidea {{\n\turl = \"{}\"\n\ttimeout = 5\n\tpoll = {poll}\n\tpoll_wait = 12\n{items}\
         \trealms {{\n\t\texample.com = corp\n\t}}\n}}\n\
         reply Filter-Id {{\n\tfrom = \"serial\"\n\tprefix = \"token-\"\n}}\n",
        url
    ));
    setup.site =
        Some(std::fs::read_to_string(common::repo().join("freeradius-conf/sites-available/mfa-privacyidea")).unwrap());
    setup
}

/// One login, with time for privacyIDEA to answer on a loaded machine.
fn login(server: &Server, user: &str, pass: &str) -> Reply {
    server.send_with(&["-r", "2", "-t", "28"], &format!("User-Name = \"{user}\", User-Password = \"{pass}\"\n"))
}

fn answer(server: &Server, user: &str, pass: &str, state: &str) -> Reply {
    server.send_with(
        &["-r", "2", "-t", "28"],
        &format!("User-Name = \"{user}\", User-Password = \"{pass}\", State = {state}\n"),
    )
}

#[test]
fn codes_pins_realms_and_a_server_going_down() {
    let module = require_module!();
    let mut pi = require_privacyidea!();
    let hotp = pi.enroll_hotp("alice", "corp", RFC_KEY_HEX, Some("1234"));
    pi.enroll_totp("bob", "corp", RFC_KEY_HEX, None);
    pi.enroll_hotp("carol", "corp", RFC_KEY_HEX, None);
    let server = start(&module, &pi, "wait");

    // PIN + HOTP: accepted once, with the serial mapped onto Filter-Id.
    let ok = login(&server, "alice", &format!("1234{}", RFC_HOTP[0]));
    assert!(ok.is_accept(), "{ok:?}");
    assert_eq!(ok.attr("Filter-Id"), Some(format!("token-{}", hotp.serial).as_str()));
    let replay = login(&server, "alice", &format!("1234{}", RFC_HOTP[0]));
    assert!(replay.is_reject(), "{replay:?}");
    assert_eq!(replay.message(), Some("Wrong user name, PIN or code"));
    let wrong_pin = login(&server, "alice", &format!("9999{}", RFC_HOTP[1]));
    assert!(wrong_pin.is_reject());

    // TOTP alone.
    settle_in_step(5);
    let totp = login(&server, "bob", &totp_at(now()));
    assert!(totp.is_accept(), "{totp:?}");

    // Realms: example.com maps to corp; "other" holds another alice without tokens.
    assert!(login(&server, "carol@example.com", RFC_HOTP[0]).is_accept());
    let other = login(&server, "alice@other", &format!("1234{}", RFC_HOTP[1]));
    assert!(other.is_reject(), "{other:?}");
    let unknown = login(&server, "nobody", "123456");
    assert!(unknown.is_reject());
    assert_eq!(unknown.message(), Some("Wrong user name, PIN or code"), "no hint that the user does not exist");
    let log = server.debug_log();
    assert!(log.contains("904"), "the reason (user not found) reaches the log");
    assert!(!log.contains(&format!("1234{}", RFC_HOTP[1])), "no PIN or code in the log");

    // Server down: the user is told to try later, and the log says why.
    pi.stop();
    let down = login(&server, "carol", RFC_HOTP[1]);
    assert!(down.is_reject(), "{down:?}");
    assert_eq!(down.message(), Some("Authentication is unavailable, try again later"));
    assert!(server.debug_log().contains("connection refused"));
}

/// As the Perl plugin does, an e-mail-style or UPN login whose domain is no realm
/// is sent whole and privacyIDEA finds the user; a listed realm is still mapped.
#[test]
fn a_login_with_an_at_whose_domain_is_no_realm_is_sent_whole() {
    let module = require_module!();
    let pi = require_privacyidea!();
    pi.enroll_hotp("frank@mail.example", "corp", RFC_KEY_HEX, None);
    pi.enroll_hotp("carol", "corp", RFC_KEY_HEX, None);
    let server = start(&module, &pi, "wait");
    let whole = login(&server, "frank@mail.example", RFC_HOTP[0]);
    assert!(whole.is_accept(), "{whole:?}");
    assert!(login(&server, "carol@example.com", RFC_HOTP[0]).is_accept(), "a realm in realms {{ }} is mapped");
    assert!(login(&server, "carol@corp", RFC_HOTP[1]).is_accept(), "privacyIDEA splits off its own realm");
    drop(server);

    // user_name = split sends "frank" in realm "mail.example", which privacyIDEA does not know.
    let split = start_with(&module, &pi, "wait", "\tuser_name = split\n");
    let refused = login(&split, "frank@mail.example", RFC_HOTP[1]);
    assert!(refused.is_reject(), "{refused:?}");
}

#[test]
fn email_sms_and_challenge_response_challenges() {
    let module = require_module!();
    let pi = require_privacyidea!();
    pi.enroll_email("dave", "corp", Some("4321"));
    pi.enroll_sms("erin", "corp", Some("8765"));
    pi.enroll_hotp("carol", "corp", RFC_KEY_HEX, Some("5678"));
    pi.set_policy("cr", "authentication", "challenge_response=hotp", &[]);
    let server = start(&module, &pi, "wait");

    for (user, pin) in [("dave", "4321"), ("erin", "8765")] {
        let challenge = login(&server, user, pin);
        assert!(challenge.is_challenge(), "{user}: {challenge:?}");
        let prompt = challenge.message().unwrap_or_default().to_string();
        assert!(!prompt.is_empty() && prompt.len() <= 253, "privacyIDEA's text is the prompt: {prompt:?}");
        let state = challenge.state().to_string();
        let code = pi.read_sent_code(user);
        let accept = answer(&server, user, &code, &state);
        assert!(accept.is_accept(), "{user}: {accept:?}");
        // The State is spent, and one of another user's is refused.
        assert!(answer(&server, user, &code, &state).is_reject());
    }

    let challenge = login(&server, "carol", "5678");
    assert!(challenge.is_challenge(), "{challenge:?}");
    let wrong = answer(&server, "carol", "000000", challenge.state());
    assert!(wrong.is_reject(), "{wrong:?}");
    let again = login(&server, "carol", "5678");
    assert!(answer(&server, "dave", RFC_HOTP[0], again.state()).is_reject(), "a State is bound to its user");
    let third = login(&server, "carol", "5678");
    assert!(answer(&server, "carol", RFC_HOTP[0], third.state()).is_accept());

    // Several tokens behind one PIN: one challenge (privacyIDEA's multi_challenge, one
    // transaction), answered by any of them.
    pi.enroll_hotp("dave", "corp", RFC_KEY_HEX, Some("4321"));
    let multi = login(&server, "dave", "4321");
    assert!(multi.is_challenge(), "{multi:?}");
    assert!(
        answer(&server, "dave", RFC_HOTP[0], multi.state()).is_accept(),
        "the HOTP token answers the shared challenge"
    );
}

#[test]
fn push_approved_and_declined_on_the_phone() {
    let module = require_module!();
    let pi = require_privacyidea!();
    let token = pi.enroll_push("bob", "corp", Some("2468"));
    let server = start(&module, &pi, "wait");

    for approve in [true, false] {
        let reply = thread::scope(|s| {
            s.spawn(|| {
                // The phone answers once the login has triggered the push.
                for _ in 0..40 {
                    let (ok, _) =
                        pi.try_admin(&["phone-answer", &token.serial, if approve { "accept" } else { "decline" }]);
                    if ok {
                        return;
                    }
                    thread::sleep(Duration::from_millis(250));
                }
                panic!("no push challenge reached the phone");
            });
            login(&server, "bob", "2468")
        });
        if approve {
            assert!(reply.is_accept(), "{reply:?}");
        } else {
            assert!(reply.is_reject(), "{reply:?}");
            assert_eq!(reply.message(), Some("The login was denied on your device"));
        }
    }
}

#[test]
fn push_by_challenge_then_check() {
    let module = require_module!();
    let pi = require_privacyidea!();
    let token = pi.enroll_push("dave", "corp", Some("1357"));
    let server = start(&module, &pi, "challenge");
    let challenge = login(&server, "dave", "1357");
    assert!(challenge.is_challenge(), "{challenge:?}");
    let pending = answer(&server, "dave", "", challenge.state());
    assert!(pending.is_challenge(), "not approved yet: {pending:?}");
    pi.phone_answer(&token.serial, true);
    let done = answer(&server, "dave", "", pending.state());
    assert!(done.is_accept(), "{done:?}");

    // With an HOTP token behind the same PIN, a code may be typed instead of approving.
    pi.enroll_hotp("dave", "corp", RFC_KEY_HEX, Some("1357"));
    pi.set_policy("cr", "authentication", "challenge_response=hotp", &[]);
    let both = login(&server, "dave", "1357");
    assert!(both.is_challenge(), "{both:?}");
    let typed = answer(&server, "dave", RFC_HOTP[0], both.state());
    assert!(typed.is_accept(), "{typed:?}");
}

#[test]
fn a_code_re_sent_to_the_other_server_while_privacyidea_is_slow_gets_the_same_answer() {
    let (module, bin) = require_redis!();
    let pi = require_privacyidea!();
    let hotp = pi.enroll_hotp("alice", "corp", RFC_KEY_HEX, None);
    let redis = common::redis::RedisServer::start(&bin);
    let relay = SlowRelay::start(pi.port, Duration::from_secs(2));
    let relay = format!("http://{}", relay.address());
    let farm = setup(&relay, "wait", "")
        .file("mods-config/mfa/state.key", "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\n")
        .with(&format!("state_store = redis\nredis {{\n\tserver = {}\n\tprefix = t\n}}\n", redis.address()));
    let servers: Vec<Server> = (0..2).map(|_| Server::start(&module, &farm)).collect();
    let (a, b) = thread::scope(|s| {
        let first = s.spawn(|| login(&servers[0], "alice", RFC_HOTP[0]));
        thread::sleep(Duration::from_millis(500));
        let second = login(&servers[1], "alice", RFC_HOTP[0]);
        (first.join().unwrap(), second)
    });
    assert!(a.is_accept() && b.is_accept(), "the re-send is not refused as a used code: {a:?} {b:?}");
    let serial = format!("token-{}", hotp.serial);
    assert_eq!((a.attr("Filter-Id"), b.attr("Filter-Id")), (Some(serial.as_str()), Some(serial.as_str())));
    assert!(servers[1].debug_log().contains("is being decided on another server: joining it"));
    // privacyIDEA checked it once: the code is used, the next one is good.
    assert!(login(&servers[1], "alice", RFC_HOTP[1]).is_accept());
}

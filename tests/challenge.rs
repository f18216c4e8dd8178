//! Challenge-response end to end: a real FreeRADIUS in the modes
//! password-then-otp and auto, radclient sending the State back, and a fake
//! SMS/e-mail gateway (tests/common/fake_gateway.rs) that records what it is sent.

mod common;

use std::path::Path;

use common::fake_gateway::{Behaviour, FakeGateway};
use common::{now, settle_in_step, totp_at, Server, Setup};

const USERS: &[(&str, &str)] = &[("alice", "pw-alice"), ("bob", "pw-bob")];
/// A fixed State key, so that two servers can share it.
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

fn app_tokens() -> String {
    common::totp_tokens(&["alice", "bob"])
}

/// alice: an app, SMS and e-mail; bob: an app only.
fn three_method_tokens() -> String {
    format!(
        r#"{{"users": {{
            "alice": {{"tokens": [{{"serial": "T-alice", "type": "totp", "secret": "{0}"}}],
                       "sms": "+4512345612", "email": "alice@example.com"}},
            "bob": {{"tokens": [{{"serial": "T-bob", "type": "totp", "secret": "{0}"}}]}}
        }}}}"#,
        common::SEED_B32
    )
}

fn gateways(sms: &FakeGateway, email: &FakeGateway) -> String {
    let body = r#"'{"to": "{destination}", "text": "{message}", "user": "{user}"}'"#;
    format!(
        "sms {{\n url = \"{}\"\n authorization = \"Bearer sms-token\"\n body = {body}\n timeout = 2\n}}\n\
         email {{\n url = \"{}\"\n body = {body}\n timeout = 2\n}}\n",
        sms.url(),
        email.url()
    )
}

/// The code in the last message the gateway was sent (`code_length` 6, the default).
fn sent_code(gateway: &FakeGateway) -> String {
    sent_code_of(gateway, 6)
}

/// The code of `digits` digits in the last message the gateway was sent.
fn sent_code_of(gateway: &FakeGateway, digits: usize) -> String {
    let requests = gateway.requests();
    let body = &requests.last().expect("the gateway was sent nothing").body;
    let text: serde_json::Value = serde_json::from_str(body).unwrap();
    let message = text["text"].as_str().unwrap();
    let code: String =
        message.trim_start_matches("Your login code is ").chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), digits, "{message}");
    code
}

fn setup(mode: &str, tokens: &str) -> Setup {
    Setup::challenge_mode(mode, tokens, USERS).file("mods-config/mfa/state.key", KEY)
}

/// An SMS and an e-mail gateway behaving as given, and a server in mode
/// password-then-otp for the users of three methods using them, with `extra`
/// items (bound in this order, the server is dropped first).
fn menu_server(module: &Path, sms: Behaviour, email: Behaviour, extra: &str) -> (FakeGateway, FakeGateway, Server) {
    let (sms, email) = (FakeGateway::start(sms), FakeGateway::start(email));
    let setup = setup("password-then-otp", &three_method_tokens()).with(&gateways(&sms, &email)).with(extra);
    let server = Server::start(module, &setup);
    (sms, email, server)
}

#[test]
fn password_then_otp_full_dialogue() {
    let module = require_module!();
    let server = Server::start(&module, &setup("password-then-otp", &app_tokens()));
    settle_in_step(8);
    let first = server.auth("alice", "pw-alice");
    assert!(first.is_challenge(), "{first:?}");
    assert_eq!(first.messages(), vec!["Enter OTP:"]);
    let reply = server.answer("alice", &totp_at(now()), first.state());
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn a_wrong_password_gets_no_challenge() {
    let module = require_module!();
    let server = Server::start(&module, &setup("password-then-otp", &app_tokens()));
    let reply = server.auth("alice", "wrong");
    assert!(reply.is_reject(), "{reply:?}");
}

#[test]
fn wrong_answer_then_right_answer() {
    let module = require_module!();
    let server = Server::start(&module, &setup("password-then-otp", &app_tokens()));
    settle_in_step(8);
    let first = server.auth("alice", "pw-alice");
    let again = server.answer("alice", "000000", first.state());
    assert!(again.is_challenge(), "{again:?}");
    assert_eq!(again.messages(), vec!["Wrong code, try again:", "Enter OTP:"]);
    assert_ne!(again.state(), first.state());
    let reply = server.answer("alice", &totp_at(now()), again.state());
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn too_many_wrong_answers_end_the_dialogue_and_count_toward_lockout() {
    let module = require_module!();
    let setup = setup("password-then-otp", &app_tokens())
        .with("max_rounds = 2\nlockout {\n max_failures = 3\n duration = 600\n}");
    let server = Server::start(&module, &setup);
    let first = server.auth("alice", "pw-alice");
    let second = server.answer("alice", "000000", first.state());
    assert!(second.is_challenge());
    let end = server.answer("alice", "000000", second.state());
    assert!(end.is_reject(), "{end:?}");
    assert_eq!(end.message(), Some("Wrong or already used code"));
    // Two failures counted; the third locks.
    let first = server.auth("alice", "pw-alice");
    let locked = server.answer("alice", "000000", first.state());
    assert!(locked.is_reject(), "{locked:?}");
    assert!(locked.message().unwrap().starts_with("Too many failed attempts"), "{locked:?}");
}

#[test]
fn forged_reused_and_swapped_states_are_refused() {
    let module = require_module!();
    let server = Server::start(&module, &setup("password-then-otp", &app_tokens()));
    settle_in_step(12);
    let code = totp_at(now());
    let bad_state = "This login has expired or is not valid, please start again";

    let forged = server.answer("alice", &code, &format!("0x{}", "ab".repeat(70)));
    assert_eq!(forged.message(), Some(bad_state), "{forged:?}");
    let garbage = server.answer("alice", &code, "0x00");
    assert_eq!(garbage.message(), Some(bad_state));

    // A State of ours with one byte changed.
    let alice = server.auth("alice", "pw-alice");
    let mut altered = alice.state().to_string();
    let last = if altered.ends_with('0') { "1" } else { "0" };
    altered.replace_range(altered.len() - 1.., last);
    let forged = server.answer("alice", &code, &altered);
    assert_eq!(forged.message(), Some(bad_state), "{forged:?}");

    // Alice's State answered as bob.
    let swapped = server.answer("bob", &code, alice.state());
    assert_eq!(swapped.message(), Some(bad_state), "{swapped:?}");

    // Alice's State from another NAS.
    let other_nas = server.send(&format!(
        "User-Name = \"alice\", User-Password = \"{code}\", State = {}, NAS-Identifier = \"other-nas\"\n",
        alice.state()
    ));
    assert_eq!(other_nas.message(), Some(bad_state), "{other_nas:?}");

    // Alice's State, asked for by one NAS-IP-Address and answered from another.
    let from_ip = server.send("User-Name = \"alice\", User-Password = \"pw-alice\", NAS-IP-Address = 10.0.0.1\n");
    let other_ip = server.send(&format!(
        "User-Name = \"alice\", User-Password = \"{code}\", State = {}, NAS-IP-Address = 10.0.0.2\n",
        from_ip.state()
    ));
    assert_eq!(other_ip.message(), Some(bad_state), "{other_ip:?}");

    // The right answer, then the same State again.
    let alice = server.auth("alice", "pw-alice");
    assert!(server.answer("alice", &code, alice.state()).is_accept());
    let reused = server.answer("alice", &totp_at(now() + 30), alice.state());
    assert_eq!(reused.message(), Some(bad_state), "{reused:?}");

    let log = server.debug_log();
    for reason in [
        "not one this module issues",
        "not issued by this module or was altered",
        "another user",
        "another NAS",
        "already used",
    ] {
        assert!(log.contains(reason), "no log line says {reason:?}");
    }
}

#[test]
fn an_answered_state_stays_answered_after_kill_9_and_a_restart() {
    let module = require_module!();
    let mut server = Server::start(&module, &setup("password-then-otp", &app_tokens()));
    settle_in_step(12);
    let alice = server.auth("alice", "pw-alice");
    assert!(server.answer("alice", &totp_at(now()), alice.state()).is_accept());
    server.restart(); // kill -9, then a new process with the same files
                      // The next code is valid, the password is not asked again: only the record of the
                      // answer, read back from the journal, refuses it.
    let replayed = server.answer("alice", &totp_at(now() + 30), alice.state());
    assert_eq!(replayed.message(), Some("This login has expired or is not valid, please start again"), "{replayed:?}");
    assert!(server.debug_log().contains("already used"));
    let journal = std::fs::read_to_string(server.state_path()).unwrap();
    assert!(journal.contains("\"k\":\"used\""), "{journal}");
}

#[test]
fn an_expired_state_is_refused() {
    let module = require_module!();
    let server = Server::start(&module, &setup("password-then-otp", &app_tokens()).with("challenge_timeout = 10"));
    let first = server.auth("alice", "pw-alice");
    std::thread::sleep(std::time::Duration::from_secs(11));
    let reply = server.answer("alice", &totp_at(now()), first.state());
    assert!(reply.is_reject(), "{reply:?}");
    assert!(server.debug_log().contains("expired"));
}

#[test]
fn a_state_in_password_otp_mode_is_refused() {
    let module = require_module!();
    let setup = Setup::password_otp_mode(&app_tokens(), USERS).with("state_key = ${modconfdir}/mfa/state.key");
    let server = Server::start(&module, &setup);
    settle_in_step(5);
    // The site skips the first factor for a request with a State: the module must not accept it.
    let reply = server.answer("alice", &format!("x,{}", totp_at(now())), "0x0102030405");
    assert!(reply.is_reject(), "{reply:?}");
}

#[test]
fn auto_mode_takes_both_or_challenges() {
    let module = require_module!();
    let server = Server::start(&module, &setup("auto", &app_tokens()));
    settle_in_step(8);
    let reply = server.auth("alice", &format!("pw-alice,{}", totp_at(now())));
    assert!(reply.is_accept(), "{reply:?}");

    let first = server.auth("bob", "pw-bob");
    assert!(first.is_challenge(), "{first:?}");
    let reply = server.answer("bob", &totp_at(now()), first.state());
    assert!(reply.is_accept(), "{reply:?}");

    // A password with a comma but no code after it is a password alone.
    let server2 = Server::start(
        &module,
        &Setup::challenge_mode("auto", &app_tokens(), &[("alice", "a,b")]).file("mods-config/mfa/state.key", KEY),
    );
    assert!(server2.auth("alice", "a,b").is_challenge());
}

#[test]
fn the_menu_lists_every_method_and_sms_delivers_the_code() {
    let module = require_module!();
    let (sms, email, server) = menu_server(&module, Behaviour::Accept, Behaviour::Accept, "");

    let menu = server.auth("alice", "pw-alice");
    assert!(menu.is_challenge(), "{menu:?}");
    assert_eq!(menu.messages().len(), 1, "a NAS that shows only the first Reply-Message shows the whole menu");
    assert_eq!(
        menu.lines(),
        vec![
            "Choose how to confirm this login:",
            "1. Authenticator app",
            "2. SMS to +45 **** **12",
            "3. E-mail to a***@example.com",
            "Enter 1 to 3:"
        ]
    );

    let bad = server.answer("alice", "7", menu.state());
    assert!(bad.is_challenge());
    assert_eq!(bad.lines()[0], "Enter a number from 1 to 3:");

    let prompt = server.answer("alice", "2", bad.state());
    assert!(prompt.is_challenge(), "{prompt:?}");
    let text = prompt.message().unwrap();
    assert!(text.starts_with("Enter the code sent to +45 **** **12 ("), "{text}");

    let requests = sms.requests();
    assert_eq!(requests.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(body["to"], "+4512345612");
    assert_eq!(body["user"], "alice");
    assert!(requests[0]
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("authorization") && v == "Bearer sms-token"));
    // The correlation code in the prompt is the one in the SMS.
    let correlation = &text[text.len() - 6..text.len() - 2];
    assert!(body["text"].as_str().unwrap().contains(correlation), "{body} vs {text}");
    assert!(email.requests().is_empty());

    let code = sent_code(&sms);
    let reply = server.answer("alice", &code, prompt.state());
    assert!(reply.is_accept(), "{reply:?}");
    // Good once.
    assert!(server.answer("alice", &code, prompt.state()).is_reject());
    // The code never reaches the log.
    assert!(!server.debug_log().contains(&code));
}

#[test]
fn email_delivers_the_code_and_a_wrong_one_asks_again() {
    let module = require_module!();
    let (_sms, email, server) = menu_server(&module, Behaviour::Accept, Behaviour::Accept, "");
    let menu = server.auth("alice", "pw-alice");
    let prompt = server.answer("alice", "3", menu.state());
    assert!(prompt.message().unwrap().starts_with("Enter the code sent to a***@example.com"), "{prompt:?}");
    let code = sent_code(&email);
    let wrong = if code == "111111" { "222222" } else { "111111" };
    let again = server.answer("alice", wrong, prompt.state());
    assert!(again.is_challenge(), "{again:?}");
    // Asked again, with the correlation code of the e-mail already sent.
    let first = prompt.message().unwrap().to_string();
    assert_eq!(again.lines().last().map(|l| l.to_string()), Some(first.clone()), "{again:?}");
    let correlation = &first[first.len() - 7..first.len() - 1];
    assert!(correlation.starts_with('(') && email.requests()[0].body.contains(correlation), "{first}");
    assert!(server.answer("alice", &code, again.state()).is_accept());
}

#[test]
fn one_method_skips_the_menu() {
    let module = require_module!();
    let (_sms, _email, server) = menu_server(&module, Behaviour::Accept, Behaviour::Accept, "");
    let first = server.auth("bob", "pw-bob");
    assert_eq!(first.messages(), vec!["Enter OTP:"]);
}

#[test]
fn a_failing_or_hanging_gateway_gives_a_reject_that_says_so() {
    let module = require_module!();
    let (sms, email, server) = menu_server(&module, Behaviour::Fail, Behaviour::Hang, "");
    for (choice, gateway) in [("2", &sms), ("3", &email)] {
        let menu = server.auth("alice", "pw-alice");
        let reply = server.answer("alice", choice, menu.state());
        assert!(reply.is_reject(), "{choice}: {reply:?}");
        assert_eq!(reply.message(), Some("The code could not be sent, try again later"));
        assert_eq!(gateway.requests().len(), 1);
    }
    let log = server.debug_log();
    assert!(log.contains("HTTP 500") || log.contains("500"), "the log names the gateway's answer");
    assert!(log.contains("did not answer"), "the log names the timeout");
    assert!(!log.contains("sms-token"), "the gateway's key is not logged");
}

#[test]
fn a_dialogue_begun_on_one_server_ends_on_another_with_the_same_key() {
    let module = require_module!();
    let primary = Server::start(&module, &setup("password-then-otp", &app_tokens()));
    let secondary = Server::start(&module, &setup("password-then-otp", &app_tokens()));
    settle_in_step(8);
    let first = primary.auth("alice", "pw-alice");
    let reply = secondary.answer("alice", &totp_at(now()), first.state());
    assert!(reply.is_accept(), "{reply:?}");

    // A server with another key refuses it.
    let stranger = Server::start(
        &module,
        &Setup::challenge_mode("password-then-otp", &app_tokens(), USERS)
            .file("mods-config/mfa/state.key", &format!("{}\n", "11".repeat(32))),
    );
    let first = primary.auth("alice", "pw-alice");
    assert!(stranger.answer("alice", &totp_at(now() + 30), first.state()).is_reject());
}

#[test]
fn the_key_file_is_created_private_when_missing() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::challenge_mode("password-then-otp", &app_tokens(), USERS));
    let key = server.dir.join("mods-config/mfa/state.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(server.auth("alice", "pw-alice").is_challenge());
}

#[test]
fn chap_answers_in_otp_mode() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&app_tokens()));
    settle_in_step(5);
    // radclient turns a cleartext CHAP-Password into the CHAP answer.
    let reply = server.send(&format!("User-Name = \"alice\", CHAP-Password = \"{}\"\n", totp_at(now())));
    assert!(reply.is_accept(), "{reply:?}");
    let again = server.send(&format!("User-Name = \"alice\", CHAP-Password = \"{}\"\n", totp_at(now())));
    assert!(again.is_reject(), "replayed: {again:?}");
    let wrong = server.send("User-Name = \"bob\", CHAP-Password = \"000000\"\n");
    assert!(wrong.is_reject());
}

#[test]
fn a_user_without_a_second_factor_is_rejected_or_let_in_per_instance() {
    let module = require_module!();
    let users = &[("alice", "pw-alice"), ("carol", "pw-carol")];
    // carol has no entry in the token file.
    let strict = Server::start(
        &module,
        &Setup::challenge_mode("password-then-otp", &app_tokens(), users).file("mods-config/mfa/state.key", KEY),
    );
    let reply = strict.auth("carol", "pw-carol");
    assert_eq!(reply.message(), Some("No second factor is enrolled for this user"), "{reply:?}");
    drop(strict);

    let lenient = Server::start(
        &module,
        &Setup::challenge_mode("password-then-otp", &app_tokens(), users)
            .file("mods-config/mfa/state.key", KEY)
            .with("require_token = no"),
    );
    assert!(lenient.auth("carol", "pw-carol").is_accept(), "the first factor alone");
    assert!(lenient.auth("carol", "wrong").is_reject());
    assert!(lenient.auth("alice", "pw-alice").is_challenge(), "users with a factor still get the challenge");
}

/// An SMS API of the common shape (Twilio's): form fields and HTTP Basic
/// authentication with an account id and a token, by configuration alone.
fn form_sms(sms: &FakeGateway, password: &str) -> String {
    format!(
        "sms {{\n url = \"{}\"\n body_format = form\n body = \"To={{destination}}&From=%2B15557654321&Body={{message}}\"\n \
         username = \"AC0123456789\"\n password = \"{password}\"\n timeout = 2\n}}\n",
        sms.url()
    )
}

#[test]
fn an_sms_api_taking_form_fields_and_basic_auth_delivers_the_code() {
    let module = require_module!();
    let sms = FakeGateway::start(Behaviour::Accept);
    sms.require_basic("AC0123456789", "auth-t0ken");
    let server =
        Server::start(&module, &setup("password-then-otp", &three_method_tokens()).with(&form_sms(&sms, "auth-t0ken")));
    let menu = server.auth("alice", "pw-alice");
    assert_eq!(menu.lines()[2], "2. SMS to +45 **** **12", "{menu:?}");
    let prompt = server.answer("alice", "2", menu.state());
    assert!(prompt.is_challenge(), "{prompt:?}");

    let requests = sms.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.header("Content-Type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(r.basic_auth(), Some(("AC0123456789".to_string(), "auth-t0ken".to_string())));
    let fields = r.form_fields().expect("a form body");
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["To", "From", "Body"]);
    assert_eq!(r.form("To").as_deref(), Some("+4512345612"));
    assert_eq!(r.form("From").as_deref(), Some("+15557654321"));
    let body = r.form("Body").unwrap();
    let code: String =
        body.trim_start_matches("Your login code is ").chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{body}");

    assert!(server.answer("alice", &code, prompt.state()).is_accept());
    assert!(server.answer("alice", &code, prompt.state()).is_reject(), "good once");
    let log = server.debug_log();
    assert!(!log.contains(&code) && !log.contains("auth-t0ken"), "no code, no token in the log");
}

#[test]
fn an_sms_api_refusing_the_basic_credentials_gives_send_failed() {
    let module = require_module!();
    let sms = FakeGateway::start(Behaviour::Accept);
    sms.require_basic("AC0123456789", "auth-t0ken");
    let server = Server::start(
        &module,
        &setup("password-then-otp", &three_method_tokens()).with(&form_sms(&sms, "wrong-t0ken")),
    );
    let menu = server.auth("alice", "pw-alice");
    let reply = server.answer("alice", "2", menu.state());
    assert!(reply.is_reject(), "{reply:?}");
    assert_eq!(reply.message(), Some("The code could not be sent, try again later"));
    let log = server.debug_log();
    assert!(log.contains("the gateway answered HTTP 401"), "{}", common::tail(&log, 30));
    assert!(!log.contains("wrong-t0ken"), "the token is not logged");
}

#[test]
fn a_form_body_that_is_no_form_stops_the_start() {
    let module = require_module!();
    let sms = FakeGateway::start(Behaviour::Accept);
    let bad = form_sms(&sms, "t").replace("To={destination}&", "To {destination}&");
    let out = Server::start_failing(&module, &setup("password-then-otp", &three_method_tokens()).with(&bad));
    assert!(out.contains("sms.body") && out.contains("form body"), "{}", common::tail(&out, 20));
    let out = Server::start_failing(
        &module,
        &setup("password-then-otp", &three_method_tokens())
            .with(&form_sms(&sms, "t").replace("body_format = form", "body_format = xml")),
    );
    assert!(out.contains("sms.body_format"), "{}", common::tail(&out, 20));
}

/// The sections of sent codes are checked whatever the mode: in mode otp,
/// which sends none, a broken one still stops the start, before a mode that
/// uses it is chosen.
#[test]
fn a_broken_sms_section_stops_the_start_in_a_mode_that_sends_no_code() {
    let module = require_module!();
    let sms = FakeGateway::start(Behaviour::Accept);
    let bad = form_sms(&sms, "t").replace("To={destination}&", "To {destination}&");
    let out = Server::start_failing(&module, &Setup::otp_mode(&three_method_tokens()).with(&bad));
    assert!(out.contains("sms.body") && out.contains("form body"), "{}", common::tail(&out, 20));
    let out = Server::start_failing(&module, &Setup::otp_mode(&three_method_tokens()).with("otp_length = 9\n"));
    assert!(out.contains("otp_length"), "{}", common::tail(&out, 20));
}

/// `limits.codes_sent` with the local state journal: past N codes sent in the
/// window, choosing SMS gets the too-many message and the gateway is not called.
#[test]
fn past_limits_codes_sent_no_code_is_sent() {
    let module = require_module!();
    let limit = "limits {\n codes_sent = 2\n window = 600\n}";
    let (sms, email, server) = menu_server(&module, Behaviour::Accept, Behaviour::Accept, limit);
    for _ in 0..2 {
        let menu = server.auth("alice", "pw-alice");
        let prompt = server.answer("alice", "2", menu.state());
        assert!(prompt.is_challenge(), "{prompt:?}");
    }
    assert_eq!(sms.requests().len(), 2);
    let menu = server.auth("alice", "pw-alice");
    let third = server.answer("alice", "3", menu.state());
    assert!(third.is_reject(), "{third:?}");
    assert!(third.message().unwrap_or_default().starts_with("Too many approval requests: try again in "), "{third:?}");
    assert_eq!((sms.requests().len(), email.requests().len()), (2, 0), "no third code, by any channel");
    assert!(server.debug_log().contains("limits.codes_sent"), "the log names the limit");
}

#[test]
fn code_length_sets_the_digits_of_a_code_sent() {
    let module = require_module!();
    let (sms, _email, server) = menu_server(&module, Behaviour::Accept, Behaviour::Accept, "code_length = 8");
    let menu = server.auth("alice", "pw-alice");
    let prompt = server.answer("alice", "2", menu.state());
    assert!(prompt.is_challenge(), "{prompt:?}");
    let code = sent_code_of(&sms, 8);
    // Its first six digits are not the code.
    let again = server.answer("alice", &code[..6], prompt.state());
    assert!(again.is_challenge(), "{again:?}");
    assert!(server.answer("alice", &code, again.state()).is_accept());
}

/// A locked user is sent no code: not on a new login, and not from a menu shown
/// before the lock.
#[test]
fn a_locked_user_is_sent_no_code() {
    let module = require_module!();
    let lockout = "max_rounds = 5\nlockout {\n max_failures = 2\n duration = 600\n}";
    let (sms, email, server) = menu_server(&module, Behaviour::Accept, Behaviour::Accept, lockout);
    let early = server.auth("alice", "pw-alice");
    assert!(early.is_challenge(), "{early:?}");

    let menu = server.auth("alice", "pw-alice");
    let app = server.answer("alice", "1", menu.state());
    let again = server.answer("alice", "000000", app.state());
    assert!(again.is_challenge(), "{again:?}");
    let locked = server.answer("alice", "000000", again.state());
    assert!(locked.message().unwrap_or_default().starts_with("Too many failed attempts"), "{locked:?}");

    assert!(server.auth("alice", "pw-alice").is_reject());
    for choice in ["2", "3"] {
        let late = server.answer("alice", choice, early.state());
        assert!(late.is_reject(), "{late:?}");
    }
    assert_eq!((sms.requests().len(), email.requests().len()), (0, 0), "no code, by any channel");
}

//! E-mail codes over SMTP end to end: a real FreeRADIUS in password-then-otp
//! mode, the user picks e-mail in the menu, and a real SMTP server on loopback
//! (aiosmtpd, tests/common/smtp_sink.rs) with STARTTLS under a private CA the
//! test makes and AUTH receives the message; the code typed back is accepted once.

mod common;
#[path = "common/smtp_sink.rs"]
mod smtp_sink;

use common::tls_front::TestCa;
use common::{Server, Setup};
use smtp_sink::{SinkOptions, SmtpSink};

const USERS: &[(&str, &str)] = &[("alice", "pw-alice")];
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
const LOGIN: (&str, &str) = ("mfa-relay", "relay-pa55word");

/// alice: an app and an e-mail address, so that the menu asks which.
fn tokens() -> String {
    format!(
        r#"{{"users": {{"alice": {{"tokens": [{{"serial": "T-alice", "type": "totp", "secret": "{}"}}],
             "email": "alice@example.com"}}}}}}"#,
        common::SEED_B32
    )
}

fn ca(tag: &str) -> TestCa {
    TestCa::create(&common::repo().join("target/integration").join(format!("ca-smtp-{tag}-{}", std::process::id())))
}

/// The module with `smtp { }` pointing at the sink, STARTTLS and a login.
fn setup(sink: &SmtpSink, password: &str, extra: &str) -> Setup {
    Setup::challenge_mode("password-then-otp", &tokens(), USERS).file("mods-config/mfa/state.key", KEY).with(&format!(
        "smtp {{\n server = \"127.0.0.1:{}\"\n tls = starttls\n username = \"{}\"\n password = \"{password}\"\n \
             from = \"Login codes <mfa@example.com>\"\n subject = \"Login code for {{user}} ({{correlation}})\"\n \
             timeout = 5\n {extra}\n}}\n",
        sink.port(),
        LOGIN.0
    ))
}

/// Picks e-mail in alice's menu: the reply to that choice.
fn pick_email(server: &Server) -> common::Reply {
    let menu = server.auth("alice", "pw-alice");
    assert!(menu.is_challenge(), "{menu:?}");
    assert_eq!(menu.lines()[2], "2. E-mail to a***@example.com", "{menu:?}");
    server.answer("alice", "2", menu.state())
}

#[test]
fn the_code_goes_by_starttls_with_a_login_and_is_good_once() {
    let module = require_module!();
    let ca = ca("ok");
    let options =
        SinkOptions { tls: Some((&ca.server_cert, &ca.server_key)), login: Some(LOGIN), ..Default::default() };
    let Some(sink) = SmtpSink::start(&options) else { return };
    let server = Server::start(&module, &setup(&sink, LOGIN.1, &format!("ca_file = \"{}\"", ca.ca_file.display())));

    let prompt = pick_email(&server);
    assert!(prompt.is_challenge(), "{prompt:?}");
    let text = prompt.message().unwrap();
    assert!(text.starts_with("Enter the code sent to a***@example.com ("), "{text}");
    let correlation = &text[text.len() - 6..text.len() - 2];

    let mails = sink.wait_for(1, std::time::Duration::from_secs(2));
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.mail_from, "mfa@example.com");
    assert_eq!(mail.rcpt_to, "alice@example.com");
    assert_eq!(mail.header("From").as_deref(), Some("\"Login codes\" <mfa@example.com>"));
    assert_eq!(mail.header("To").as_deref(), Some("alice@example.com"));
    assert_eq!(mail.header("Subject"), Some(format!("Login code for alice ({correlation})")));
    let body = mail.body().trim();
    let code = body.strip_prefix("Your login code is ").unwrap().split(' ').next().unwrap().to_string();
    assert_eq!(code.len(), 6, "{body}");
    assert!(body.ends_with(&format!("({correlation})")), "{body}");

    let reply = server.answer("alice", &code, prompt.state());
    assert!(reply.is_accept(), "{reply:?}");
    let replay = server.answer("alice", &code, prompt.state());
    assert!(replay.is_reject(), "{replay:?}");

    let log = server.debug_log();
    assert!(log.contains("a code was sent to \"alice\" by E-mail"), "{}", common::tail(&log, 40));
    assert!(!log.contains(&code), "the code is not logged");
    assert!(!log.contains(LOGIN.1), "the relay's password is not logged");
}

#[test]
fn a_wrong_relay_password_rejects_with_send_failed_and_logs_no_secret() {
    let module = require_module!();
    let ca = ca("auth");
    let options =
        SinkOptions { tls: Some((&ca.server_cert, &ca.server_key)), login: Some(LOGIN), ..Default::default() };
    let Some(sink) = SmtpSink::start(&options) else { return };
    let wrong = "not-the-pa55word";
    let server = Server::start(&module, &setup(&sink, wrong, &format!("ca_file = \"{}\"", ca.ca_file.display())));

    let reply = pick_email(&server);
    assert!(reply.is_reject(), "{reply:?}");
    assert_eq!(reply.message(), Some("The code could not be sent, try again later"));
    assert!(sink.messages().is_empty());
    let log = server.debug_log();
    assert!(
        log.contains("the mail server refused the login of \"mfa-relay\" (reply 535)"),
        "{}",
        common::tail(&log, 40)
    );
    assert!(!log.contains(wrong) && !log.contains(LOGIN.1), "no password in the log");
}

#[test]
fn starttls_is_verified_against_the_system_store_without_ca_file() {
    let module = require_module!();
    let ca = ca("noca");
    let options =
        SinkOptions { tls: Some((&ca.server_cert, &ca.server_key)), login: Some(LOGIN), ..Default::default() };
    let Some(sink) = SmtpSink::start(&options) else { return };
    let server = Server::start(&module, &setup(&sink, LOGIN.1, ""));

    let reply = pick_email(&server);
    assert!(reply.is_reject(), "{reply:?}");
    assert_eq!(reply.message(), Some("The code could not be sent, try again later"));
    assert!(sink.messages().is_empty());
    let log = server.debug_log();
    assert!(log.contains("UnknownIssuer"), "the log says why: {}", common::tail(&log, 40));
    assert!(!log.contains(LOGIN.1));
}

#[test]
fn implicit_tls_delivers_too() {
    let module = require_module!();
    let ca = ca("tls");
    let options = SinkOptions { tls: Some((&ca.server_cert, &ca.server_key)), implicit_tls: true, login: None };
    let Some(sink) = SmtpSink::start(&options) else { return };
    let setup = Setup::challenge_mode("password-then-otp", &tokens(), USERS)
        .file("mods-config/mfa/state.key", KEY)
        .with(&format!(
            "smtp {{\n server = \"127.0.0.1:{}\"\n tls = tls\n from = \"mfa@example.com\"\n ca_file = \"{}\"\n}}\n",
            sink.port(),
            ca.ca_file.display()
        ));
    let server = Server::start(&module, &setup);
    let prompt = pick_email(&server);
    assert!(prompt.is_challenge(), "{prompt:?}");
    let mails = sink.wait_for(1, std::time::Duration::from_secs(2));
    assert_eq!(mails.len(), 1);
    assert!(mails[0].body().starts_with("Your login code is "), "{:?}", mails[0]);
}

#[test]
fn a_broken_smtp_section_stops_the_start_naming_the_item() {
    let module = require_module!();
    let base = || Setup::challenge_mode("password-then-otp", &tokens(), USERS).file("mods-config/mfa/state.key", KEY);
    let cases = [
        ("smtp {\n server = \"127.0.0.1:2525\"\n}", "smtp.from"),
        ("smtp {\n server = \"127.0.0.1:2525\"\n from = \"nobody\"\n}", "smtp.from"),
        ("smtp {\n server = \"127.0.0.1:2525\"\n from = \"a@b.c\"\n tls = ssl\n}", "smtp.tls"),
        (
            "smtp {\n server = \"127.0.0.1:2525\"\n from = \"a@b.c\"\n tls = none\n username = u\n password = \"p4ss-in-clear\"\n}",
            "smtp.username",
        ),
        ("smtp {\n server = \"127.0.0.1:2525\"\n from = \"a@b.c\"\n ca_file = \"/nonexistent/ca.pem\"\n}", "smtp.ca_file"),
        (
            "smtp {\n server = \"127.0.0.1:2525\"\n from = \"a@b.c\"\n}\nemail {\n url = \"https://mail.example.com/send\"\n body = '{\"to\": \"{destination}\", \"text\": \"{message}\"}'\n}",
            "smtp.server",
        ),
    ];
    for (section, item) in cases {
        let out = Server::start_failing(&module, &base().with(section));
        assert!(out.contains(item), "{item}: {}", common::tail(&out, 20));
        assert!(!out.contains("p4ss-in-clear"), "{}", common::tail(&out, 20));
    }
}

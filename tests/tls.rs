//! TLS of every outgoing client through a real FreeRADIUS: a push provider, an
//! SMS gateway and privacyIDEA behind HTTPS with a certificate from a private
//! CA the test makes (tests/common/tls_front.rs). The system's store does not
//! trust it; `ca_file` / `ca_path` in the client's section does; a CA file that
//! is not there stops the start, naming the item; plain http:// is warned about.

mod common;

use std::time::Duration;

use common::fake_gateway::{Behaviour, FakeGateway};
use common::fake_privacyidea::{FakePrivacyIdea, GOOD_PASS};
use common::fake_push::{FakePush, PushBehaviour};
use common::tls_front::{TestCa, TlsFront};
use common::{Server, Setup};

const USERS: &[(&str, &str)] = &[("alice", "pw-alice")];
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

fn ca(tag: &str) -> TestCa {
    let dir = common::repo().join("target/integration").join(format!("ca-{tag}-{}", std::process::id()));
    TestCa::create(&dir)
}

fn push_setup(url: &str, items: &str) -> Setup {
    Setup::challenge_mode("push", r#"{"users": {"alice": {}}}"#, USERS)
        .with(&format!("push {{\n {items}\n url = \"{url}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n}}"))
}

#[test]
fn push_through_a_private_ca_needs_its_ca_file() {
    let module = require_module!();
    let ca = ca("push");
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let front = TlsFront::start(&ca, provider.addr());

    // The system's store does not know the test's CA: no push is made, the login fails closed.
    let server = Server::start(&module, &push_setup(&front.url(), ""));
    let reply = server.auth("alice", "pw-alice");
    assert!(reply.is_reject(), "{reply:?}");
    assert_eq!(reply.message(), Some("Approval by push is unavailable, try again later"), "{reply:?}");
    assert_eq!(provider.created(), 0);
    assert!(server.debug_log().contains("UnknownIssuer"), "the log says why");
    drop(server);

    let items = format!("ca_file = \"{}\"", ca.ca_file.display());
    let server = Server::start(&module, &push_setup(&front.url(), &items));
    let reply = server.auth("alice", "pw-alice");
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(provider.created(), 1);
    assert!(front.handshakes() >= 1);
    assert!(!server.debug_log().contains("plain http://"), "https is not warned about");
}

#[test]
fn sms_through_a_private_ca_needs_its_ca_path() {
    let module = require_module!();
    let ca = ca("sms");
    let gateway = FakeGateway::start(Behaviour::Accept);
    let front = TlsFront::start(&ca, gateway.addr());
    let tokens = r#"{"users": {"alice": {"sms": "+4512345612"}}}"#;
    let sms = |items: &str| {
        Setup::challenge_mode("password-then-otp", tokens, USERS)
            .file("mods-config/mfa/state.key", KEY)
            .with(&format!(
                "sms {{\n {items}\n url = \"{}/send\"\n body = '{{\"to\": \"{{destination}}\", \"text\": \"{{message}}\"}}'\n timeout = 2\n}}",
                front.url()
            ))
    };

    let server = Server::start(&module, &sms(""));
    let reply = server.auth("alice", "pw-alice");
    assert!(reply.is_reject(), "the code cannot be sent: {reply:?}");
    assert!(gateway.requests().is_empty());
    drop(server);

    // ca_path: a directory of CA certificates.
    let dir = ca.ca_file.parent().unwrap().join("cas");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&ca.ca_file, dir.join("test-ca.pem")).unwrap();
    let server = Server::start(&module, &sms(&format!("ca_path = \"{}\"", dir.display())));
    let reply = server.auth("alice", "pw-alice");
    assert!(reply.is_challenge(), "{reply:?}");
    assert_eq!(gateway.requests().len(), 1, "the code went out over TLS");
}

#[test]
fn privacyidea_through_a_private_ca_needs_its_ca_file() {
    let module = require_module!();
    let ca = ca("pi");
    let pi = FakePrivacyIdea::start();
    let front = TlsFront::start(&ca, pi.addr());
    let site = std::fs::read_to_string(common::repo().join("freeradius-conf/sites-available/mfa-privacyidea")).unwrap();
    let setup = |items: &str| {
        let mut setup = Setup::otp_mode(r#"{"users": {}}"#).with(&format!(
            "backend = privacyidea\nprivacyidea {{\n{items}\n\turl = \"{}\"\n\ttimeout = 2\n\tpoll_wait = 6\n}}\n",
            front.url()
        ));
        setup.site = Some(site.clone());
        setup
    };
    let server = Server::start(&module, &setup(""));
    assert!(server.auth("alice", GOOD_PASS).is_reject());
    assert!(pi.requests().is_empty());
    drop(server);

    let server = Server::start(&module, &setup(&format!("\tca_file = \"{}\"", ca.ca_file.display())));
    let reply = server.auth("alice", GOOD_PASS);
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn a_configured_ca_that_is_not_there_stops_the_start_naming_the_item() {
    let module = require_module!();
    let missing = common::repo().join("target/integration/no-such-ca.pem");
    let missing = missing.display();
    for (setup, item) in [
        (push_setup("https://127.0.0.1:1", &format!("ca_file = \"{missing}\"")), "push.ca_file"),
        (push_setup("https://127.0.0.1:1", &format!("ca_path = \"{missing}\"")), "push.ca_path"),
        (
            Setup::challenge_mode("password-then-otp", r#"{"users": {}}"#, USERS)
                .file("mods-config/mfa/state.key", KEY)
                .with(&format!(
                    "email {{\n ca_file = \"{missing}\"\n url = \"https://127.0.0.1:1/send\"\n body = '{{\"to\": \"{{destination}}\", \"text\": \"{{message}}\"}}'\n}}"
                )),
            "email.ca_file",
        ),
    ] {
        let out = Server::start_failing(&module, &setup);
        assert!(out.contains(&format!("invalid '{item}'")), "{item} not named in:\n{}", common::tail(&out, 20));
        assert!(out.contains("no-such-ca.pem"), "the file is named:\n{}", common::tail(&out, 20));
    }
}

#[test]
fn plain_http_is_warned_about_at_start_up() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let server = Server::start(&module, &push_setup(&provider.url(), ""));
    let log = server.debug_log();
    let warning = format!("push.url \"{}", provider.url());
    let line = log.lines().find(|l| l.contains(&warning)).unwrap_or_else(|| panic!("no warning in:\n{log}"));
    // Logged at warning level (radiusd -X shows it without the "Warning:" a log file gets).
    assert!(line.contains("rlm_mfa (mfa): ") && line.contains("is plain http://"), "{line}");
}

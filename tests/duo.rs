//! The duo backend in a real FreeRADIUS against a fake of Duo's Auth API
//! (tests/duo/fake_duo.py) that checks every request's signature with Duo's own
//! reference client, duo_client (installed by scripts/duo.sh into .deps/duo-venv):
//! a request the module signed wrong is answered 401, as Duo does.
//!
//! Push approved, denied, timed out; passcodes right, wrong and replayed; bypass
//! and unenrolled users; a secret key Duo does not accept (at start-up and
//! later); Duo down under both failmodes; a relay's or proxy's own 403/407 refused
//! even under failmode = safe; rate limiting; a login re-sent to the
//! other server of a farm sharing a real Redis joins the first (one push, one
//! passcode check at Duo).
//!
//! Without the venv the tests are skipped, unless `RLM_MFA_REQUIRE_DUO=1`, where
//! they fail. `RLM_MFA_DUO_VENV` names another venv.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Reply, Server, Setup};

const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
/// First-factor passwords (the users file).
const USERS: &[(&str, &str)] = &[
    ("alice", "pw-alice"),
    ("bob", "pw-bob"),
    ("carol", "pw-carol"),
    ("dave", "pw-dave"),
    ("erin", "pw-erin"),
    ("frank", "pw-frank"),
    ("gina", "pw-gina"),
    ("hank", "pw-hank"),
    ("ivan", "pw-ivan"),
    ("judy", "pw-judy"),
    ("leo", "pw-leo"),
    ("mia", "pw-mia"),
    ("nina", "pw-nina"),
];

/// The fake's users: how each one's preauth and push go, and their passcodes.
const DUO_USERS: &str = r#"{
    "alice": {"preauth": "auth", "push": "approve", "passcodes": ["123456", "234567"]},
    "bob": {"preauth": "auth", "push": "deny"},
    "carol": {"preauth": "auth", "push": "never"},
    "dave": {"preauth": "allow"},
    "erin": {"preauth": "deny"},
    "frank": {"preauth": "429"},
    "ivan": {"preauth": "auth", "push": "approve", "waits": 4},
    "judy": {"preauth": "auth", "push": "deny", "waits": 4},
    "leo": {"preauth": "auth", "push": "timeout"},
    "mia": {"preauth": "html403", "passcodes": ["123456"]},
    "nina": {"preauth": "html407", "passcodes": ["123456"]},
    "kim": {"preauth": "auth", "passcodes": ["345678"], "slow": 2},
    "hank": {"preauth": "auth", "push": "approve", "devices": [
        {"device": "DPHANK1", "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"], "type": "phone",
         "display_name": "iOS (XXX-XXX-1111)"},
        {"device": "DPHANK2", "capabilities": ["auto", "push", "sms", "phone"], "type": "phone",
         "display_name": "Android (XXX-XXX-2222)"}]}
}"#;

/// The venv's python, or None (and a note) when the fake cannot run here.
fn venv_python() -> Option<PathBuf> {
    common::venv::python("duo", "duo_client")
}

macro_rules! require_duo {
    () => {
        match FakeDuo::start() {
            Some(duo) => duo,
            None => return,
        }
    };
}

struct FakeDuo {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl FakeDuo {
    fn start() -> Option<FakeDuo> {
        Self::start_signing(5)
    }

    /// A fake that verifies signatures of `version` (5 or 2) only.
    fn start_signing(version: u8) -> Option<FakeDuo> {
        let python = venv_python()?;
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = common::repo().join("target/integration").join(format!(
            "duo-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("skey"), SKEY).unwrap();
        let mut child = Command::new(python)
            .arg(common::repo().join("tests/duo/fake_duo.py"))
            .arg("--dir")
            .arg(&dir)
            .args(["--ikey", IKEY, "--users", DUO_USERS, "--sig-version", &version.to_string(), "--skey-file"])
            .arg(dir.join("skey"))
            // Held open by the child handle: the fake exits when this process is gone.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("fake.log")).unwrap())
            .spawn()
            .expect("cannot run the duo venv's python");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!("the fake Duo did not start: {line:?}\n{}", std::fs::read_to_string(dir.join("fake.log")).unwrap())
        });
        Some(FakeDuo { dir, port, child: Some(child) })
    }

    fn api_host(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests whose signature verified, in order: (path, params).
    fn requests(&self) -> Vec<(String, serde_json::Value)> {
        let text = std::fs::read_to_string(self.dir.join("requests.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["path"].as_str().unwrap().to_string(), v["params"].clone()))
            .collect()
    }

    /// Duo from now on verifies with another secret key.
    fn change_secret_key(&self) {
        std::fs::write(self.dir.join("skey"), "another-secret-key-0123456789abcdefghijk").unwrap();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for FakeDuo {
    fn drop(&mut self) {
        self.stop();
    }
}

fn duo_section(api_host: &str, extra: &str) -> String {
    format!(
        "backend = duo\nduo {{\n\tapi_host = \"{api_host}\"\n\tintegration_key = \"{IKEY}\"\n\tsecret_key = \"{SKEY}\"\n\
         \ttimeout = 3\n\twait = 6\n\tpoll_interval = 1\n{extra}\n}}\n"
    )
}

/// FreeRADIUS with the mfa instance in `mode`, asking Duo at `api_host`.
fn setup(mode: &str, api_host: &str, extra: &str) -> Setup {
    let base = match mode {
        "otp" => Setup::otp_mode(r#"{"users": {}}"#),
        _ => Setup::challenge_mode(mode, r#"{"users": {}}"#, USERS),
    };
    base.with(&duo_section(api_host, extra))
}

#[test]
fn passcodes_right_wrong_and_replayed_in_mode_otp() {
    let module = require_module!();
    let duo = require_duo!();
    let server = Server::start(&module, &setup("otp", &duo.api_host(), ""));
    assert!(server.auth("alice", "123456").is_accept());
    let replay = server.auth("alice", "123456");
    assert!(replay.is_reject(), "Duo refuses a used passcode: {replay:?}");
    assert!(server.auth("alice", "999999").is_reject());
    let log = server.debug_log();
    assert!(log.contains("Incorrect passcode"), "Duo's reason is logged");
    assert!(!log.contains("999999") && !log.contains("123456"), "never the passcode");
    // Every call verified with duo_client's signature code, /check at start-up first.
    let paths: Vec<String> = duo.requests().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths[0], "/auth/v2/check");
    assert_eq!(paths.iter().filter(|p| *p == "/auth/v2/auth").count(), 3, "{paths:?}");
}

#[test]
fn signature_version_2_where_duo_still_takes_it() {
    let module = require_module!();
    let Some(duo) = FakeDuo::start_signing(2) else { return };
    let server = Server::start(&module, &setup("otp", &duo.api_host(), "\tsignature_version = 2"));
    assert!(server.auth("alice", "123456").is_accept());
    drop(server);
    // A version 5 signature is not what this Duo checks: refused at start-up.
    let out = Server::start_failing(&module, &setup("otp", &duo.api_host(), ""));
    assert!(out.contains("duo.secret_key"), "{}", common::tail(&out, 20));
}

#[test]
fn passcode_after_the_password_in_mode_password_otp() {
    let module = require_module!();
    let duo = require_duo!();
    let server = Server::start(&module, &setup("password+otp", &duo.api_host(), ""));
    assert!(server.auth("alice", "pw-alice,234567").is_accept());
    assert!(server.auth("alice", "wrong,123456").is_reject(), "the first factor still decides");
    let sent: Vec<_> = duo.requests().into_iter().filter(|(p, _)| p == "/auth/v2/auth").collect();
    assert_eq!(sent.len(), 1, "a wrong password never reaches Duo: {sent:?}");
    assert_eq!(sent[0].1["factor"], "passcode");
    assert_eq!(sent[0].1["username"], "alice");
    // The words push and phone in place of the passcode: a push, a phone call.
    assert!(server.auth("alice", "pw-alice,push").is_accept());
    assert!(server.auth("alice", "pw-alice,phone").is_accept());
    let factors: Vec<_> =
        duo.requests().into_iter().filter(|(p, _)| p == "/auth/v2/auth").map(|(_, v)| v["factor"].clone()).collect();
    assert_eq!(factors[1..], ["push", "phone"]);
    // sms: Duo sends passcodes, the Reject says where; the next login types one.
    let sent = server.auth("alice", "pw-alice,sms");
    assert_eq!(sent.message(), Some("Enter the code sent to Phone (XXX-XXX-1234):"), "{sent:?}");
    assert!(server.auth("alice", "pw-alice,777777").is_accept());
}

#[test]
fn push_approved_denied_and_unanswered() {
    let module = require_module!();
    let duo = require_duo!();
    let server = Server::start(&module, &setup("push", &duo.api_host(), ""));
    let ok = server.send(
        "User-Name = \"alice\", User-Password = \"pw-alice\", Calling-Station-Id = \"192.0.2.7\", \
         NAS-Identifier = \"vpn-gw-1\"\n",
    );
    assert!(ok.is_accept(), "{ok:?}");
    let push = duo.requests().into_iter().find(|(p, v)| p == "/auth/v2/auth" && v["factor"] == "push").unwrap().1;
    assert_eq!(push["async"], "1");
    assert_eq!(push["ipaddr"], "192.0.2.7", "Calling-Station-Id as ipaddr");
    assert_eq!(push["pushinfo"], "nas=vpn-gw-1");

    let denied = server.auth("bob", "pw-bob");
    assert_eq!(denied.message(), Some("The login was denied on your device"), "{denied:?}");
    let unanswered =
        server.send_with(&["-r", "2", "-t", "20"], "User-Name = \"carol\", User-Password = \"pw-carol\"\n");
    assert_eq!(unanswered.message(), Some("No answer from your device in time"), "{unanswered:?}");
    assert!(server.debug_log().contains("Login request denied."), "Duo's reason is logged");
    // Duo's own "timeout" (the push expired on Duo's side) reads as an unanswered push.
    let expired = server.auth("leo", "pw-leo");
    assert_eq!(expired.message(), Some("No answer from your device in time"), "{expired:?}");
    assert!(server.debug_log().contains("Login timed out."), "Duo's reason is logged");
}

/// With `stats { file }`, every call to Duo is timed (`call="duo"`: as many as the
/// fake received, /check at start-up included) and Duo unreachable counts as a
/// provider failure.
#[test]
fn duo_calls_are_timed_and_their_failures_counted() {
    let module = require_module!();
    let mut duo = require_duo!();
    let stats = "stats {\n file = ${confdir}/mfa.prom\n interval = 1\n}\n";
    let server = Server::start(&module, &setup("otp", &duo.api_host(), "").with(stats));
    let file = server.dir.join("mfa.prom");
    assert!(server.auth("alice", "123456").is_accept());
    assert!(server.auth("alice", "999999").is_reject());
    let calls = duo.requests().len() as f64;
    let count = r#"rlm_mfa_call_duration_seconds_count{module="mfa",call="duo"}"#;
    assert_eq!(common::prom::wait_for(&file, count, calls), Some(calls), "every call to Duo timed");
    let failures = r#"rlm_mfa_failures_total{module="mfa",kind="provider"}"#;
    assert_eq!(common::prom::sample(&file, failures), Some(0.0), "a refused passcode is an answer");
    duo.stop();
    assert!(server.auth("alice", "234567").is_reject(), "Duo down, failmode secure");
    assert_eq!(common::prom::wait_for(&file, failures, 1.0), Some(1.0), "Duo unreachable: one failure");
}

/// An integration key Duo does not know: /check at start-up names the item.
#[test]
fn an_integration_key_duo_does_not_know_stops_the_start() {
    let module = require_module!();
    let duo = require_duo!();
    let section = duo_section(&duo.api_host(), "").replace(IKEY, "DIXXXXXXXXXXXXXXXXXX");
    let out = Server::start_failing(&module, &Setup::otp_mode(r#"{"users": {}}"#).with(&section));
    assert!(out.contains("duo.integration_key"), "{}", common::tail(&out, 20));
    assert!(out.contains("Invalid integration key"), "Duo's reason: {}", common::tail(&out, 20));
}

#[test]
fn push_by_challenge_then_check() {
    let module = require_module!();
    let duo = require_duo!();
    let server = Server::start(&module, &setup("push", &duo.api_host(), "\tapproval = challenge"));
    let first = server.auth("alice", "pw-alice");
    assert!(first.is_challenge(), "{first:?}");
    let answer = |state: &str| server.send(&format!("User-Name = \"alice\", User-Password = \"\", State = {state}\n"));
    let state = first.state().to_string();
    let pending = answer(&state);
    assert!(pending.is_challenge(), "not approved yet: {pending:?}");
    assert!(answer(&state).is_reject(), "a State answers once");
    let approved = answer(pending.state());
    assert!(approved.is_accept(), "{approved:?}");
    let polls = duo.requests().into_iter().filter(|(p, _)| p == "/auth/v2/auth_status").count();
    assert_eq!(polls, 2, "one /auth_status per answer round");
    // Never approved: max_rounds (3) answers end the dialogue.
    let mut reply = server.auth("carol", "pw-carol");
    for _ in 0..2 {
        reply = server.send(&format!("User-Name = \"carol\", User-Password = \"\", State = {}\n", reply.state()));
        assert!(reply.is_challenge(), "not approved yet: {reply:?}");
    }
    let ended = server.send(&format!("User-Name = \"carol\", User-Password = \"\", State = {}\n", reply.state()));
    assert_eq!(ended.message(), Some("No answer from your device in time"), "{ended:?}");
    drop(server);

    // SMS passcodes by challenge: asked for at once, one typed in the answer.
    let server = Server::start(&module, &setup("password+otp", &duo.api_host(), "\tapproval = challenge"));
    let sms = server.auth("bob", "pw-bob,sms");
    assert!(sms.is_challenge(), "{sms:?}");
    assert_eq!(sms.message(), Some("Enter the code sent to Phone (XXX-XXX-1234):"));
    let typed = server.send(&format!("User-Name = \"bob\", User-Password = \"777777\", State = {}\n", sms.state()));
    assert!(typed.is_accept(), "{typed:?}");
}

#[test]
fn auto_takes_the_passcode_with_the_password_or_asks_for_it() {
    let module = require_module!();
    let duo = require_duo!();
    let server = Server::start(&module, &setup("auto", &duo.api_host(), ""));
    assert!(server.auth("alice", "pw-alice,123456").is_accept(), "password and passcode at once");
    assert!(server.auth("alice", "wrong,234567").is_reject());
    // The push word, or the separator with nothing after it: a push, approved.
    let pushed = server.auth("alice", "pw-alice,");
    assert!(pushed.is_accept(), "\"password,\" asks for a push: {pushed:?}");
    assert!(server.auth("alice", "pw-alice,push").is_accept());
    assert!(server.auth("alice", "wrong,").is_reject(), "the first factor still decides");
    let factors: Vec<_> =
        duo.requests().into_iter().filter(|(p, _)| p == "/auth/v2/auth").map(|(_, v)| v["factor"].clone()).collect();
    assert_eq!(factors[1..], ["push", "push"], "a wrong password never reaches Duo");
    let ask = server.auth("alice", "pw-alice");
    assert!(ask.is_challenge(), "the password alone: {ask:?}");
    assert_eq!(ask.lines()[0], "Choose how to confirm this login:", "the menu: {ask:?}");
    let answer = |user: &str, typed: &str, state: &str| {
        server.send(&format!("User-Name = \"{user}\", User-Password = \"{typed}\", State = {state}\n"))
    };
    let pushed = answer("alice", "push", ask.state());
    assert!(pushed.is_accept(), "push typed in the answer, approved: {pushed:?}");
    let ask = server.auth("alice", "pw-alice");
    assert!(answer("alice", "234567", ask.state()).is_accept(), "a passcode in the answer");
    let ask = server.auth("alice", "pw-alice");
    assert!(answer("alice", "999999", ask.state()).is_reject());
}

#[test]
fn bypass_deny_unenrolled_and_rate_limited_users() {
    let module = require_module!();
    let duo = require_duo!();
    let server = Server::start(&module, &setup("push", &duo.api_host(), ""));
    assert!(server.auth("dave", "pw-dave").is_accept(), "preauth allow: a bypass user");
    assert!(server.auth("dave", "wrong").is_reject(), "the first factor still decides");
    let denied = server.auth("erin", "pw-erin");
    assert!(denied.is_reject(), "{denied:?}");
    let unenrolled = server.auth("gina", "pw-gina");
    assert!(unenrolled.is_reject(), "duo.enroll = reject: {unenrolled:?}");
    let limited = server.auth("frank", "pw-frank");
    assert!(limited.is_reject(), "{limited:?}");
    let log = server.debug_log();
    assert!(log.contains("Your account is disabled"), "Duo's deny reason is logged");
    assert!(log.contains("HTTP 429"), "the rate limit is logged");
    drop(server);

    let allowing = Server::start(&module, &setup("push", &duo.api_host(), "\tenroll = allow"));
    assert!(allowing.auth("gina", "pw-gina").is_accept(), "duo.enroll = allow");
}

#[test]
fn a_secret_key_duo_refuses() {
    let module = require_module!();
    let mut duo = require_duo!();
    duo.change_secret_key();
    // At start-up: /check names the item.
    let out = Server::start_failing(&module, &setup("otp", &duo.api_host(), ""));
    assert!(out.contains("duo.secret_key") && out.contains("Invalid signature"), "{}", common::tail(&out, 20));
    duo.stop();

    // Later: a 401 rejects, and the log says why.
    let duo = require_duo!();
    let server = Server::start(&module, &setup("otp", &duo.api_host(), ""));
    duo.change_secret_key();
    assert!(server.auth("alice", "123456").is_reject());
    assert!(server.debug_log().contains("code 40103"), "{}", common::tail(&server.debug_log(), 30));
}

#[test]
fn duo_down_follows_failmode() {
    let module = require_module!();
    let mut duo = require_duo!();
    let secure = Server::start(&module, &setup("push", &duo.api_host(), ""));
    let safe = Server::start(&module, &setup("password+otp", &duo.api_host(), "\tfailmode = safe"));
    duo.stop();
    let refused = secure.auth("alice", "pw-alice");
    assert!(refused.is_reject(), "{refused:?}");
    assert!(secure.debug_log().contains("duo.failmode = secure"));
    assert!(safe.auth("alice", "pw-alice,123456").is_accept(), "failmode = safe accepts on the password");
    assert!(safe.auth("alice", "wrong,123456").is_reject(), "never without it");

    // Duo unreachable at start-up: a warning, not a failure.
    let server = Server::start(&module, &setup("otp", &duo.api_host(), ""));
    assert!(server.debug_log().contains("keys not verified"), "{}", common::tail(&server.debug_log(), 30));
}

/// A relay's or proxy's own HTML 403 or 407 is not "Duo is down": refused with
/// messages.internal, never accepted on the password alone under failmode = safe.
#[test]
fn a_relay_or_proxy_refusing_the_call_rejects_even_under_failmode_safe() {
    let module = require_module!();
    let duo = require_duo!();
    for mode in ["password+otp", "push"] {
        let server = Server::start(&module, &setup(mode, &duo.api_host(), "\tfailmode = safe"));
        for (user, status) in [("mia", 403), ("nina", 407)] {
            let typed = if mode == "push" { format!("pw-{user}") } else { format!("pw-{user},123456") };
            let reply = server.auth(user, &typed);
            assert!(reply.is_reject(), "{mode}, HTTP {status}: {reply:?}");
            assert_eq!(reply.message(), Some("Authentication is unavailable, try again later"), "{reply:?}");
            assert!(server.debug_log().contains(&format!("HTTP {status} with an answer that is not Duo's")));
        }
        assert!(!server.debug_log().contains("duo.failmode = safe"), "failmode was not asked");
    }
}

#[test]
fn broken_configuration_is_named() {
    let module = require_module!();
    for (extra, item) in [
        ("\tfailmode = open", "duo.failmode"),
        ("\tenroll = maybe", "duo.enroll"),
        ("\tsecret_key_file = /nonexistent/skey", "duo.secret_key_file"),
    ] {
        let out = Server::start_failing(&module, &setup("password+otp", "http://127.0.0.1:1", extra));
        assert!(out.contains(item), "{item} not named in:\n{}", common::tail(&out, 20));
    }
    let out = Server::start_failing(&module, &setup("otp", "http://duo.example.com", ""));
    assert!(out.contains("duo.api_host"), "{}", common::tail(&out, 20));
}

/// The secret key from `secret_key_file` (one line, mode 0640): logins work as
/// with `secret_key`; a file others can read stops the start naming the item;
/// neither form of the key ever reaches the debug output.
#[test]
fn the_secret_key_from_a_private_file_and_never_in_the_debug_output() {
    use std::os::unix::fs::PermissionsExt;
    let module = require_module!();
    let duo = require_duo!();
    let file = duo.dir.join("skey-private");
    std::fs::write(&file, format!("{SKEY}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let section = |key_line: String| {
        format!(
            "backend = duo\nduo {{\n\tapi_host = \"{}\"\n\tintegration_key = \"{IKEY}\"\n\t{key_line}\n\
             \ttimeout = 3\n\twait = 6\n\tpoll_interval = 1\n}}\n",
            duo.api_host()
        )
    };
    let from_file = section(format!("secret_key_file = \"{}\"", file.display()));
    let server = Server::start(&module, &Setup::otp_mode(r#"{"users": {}}"#).with(&from_file));
    assert!(server.auth("alice", "123456").is_accept(), "signed with the key from the file");
    assert!(!server.debug_log().contains(SKEY), "the key is not in the debug output");
    drop(server);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Server::start_failing(&module, &Setup::otp_mode(r#"{"users": {}}"#).with(&from_file));
    assert!(out.contains("duo.secret_key_file"), "{}", common::tail(&out, 20));
    assert!(!out.contains(SKEY));

    // A key from the file that Duo refuses: the check names the item it came from.
    std::fs::write(&file, "another-secret-key-0123456789abcdefghijk\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = Server::start_failing(&module, &Setup::otp_mode(r#"{"users": {}}"#).with(&from_file));
    assert!(out.contains("invalid 'duo.secret_key_file'"), "{}", common::tail(&out, 20));
    assert!(out.contains("Invalid signature"), "{}", common::tail(&out, 20));

    // Inline: FreeRADIUS hides it as a secret in its own debug output.
    let server = Server::start(&module, &setup("otp", &duo.api_host(), ""));
    assert!(server.auth("alice", "654321").is_reject(), "a wrong passcode, refused by Duo");
    assert!(server.debug_log().contains("Incorrect passcode"), "Duo was asked");
    assert!(server.debug_log().contains("secret_key = <<< secret >>>"), "the item is shown, hidden");
    assert!(!server.debug_log().contains(SKEY), "{}", common::tail(&server.debug_log(), 40));
}

/// duo.ca_file / duo.ca_path: Duo (here the fake, behind an HTTPS front with a
/// certificate from a private CA the test makes) is verified against those CAs
/// alone when set; the system's store does not know that CA, so without them the
/// start-up check cannot reach Duo; a CA file that is not there stops the start,
/// naming duo.ca_file.
#[test]
fn duo_through_a_private_ca_needs_its_ca_file() {
    use common::tls_front::{TestCa, TlsFront};
    let module = require_module!();
    let duo = require_duo!();
    let ca = TestCa::create(&duo.dir.join("ca"));
    let front = TlsFront::start(&ca, std::net::SocketAddr::from(([127, 0, 0, 1], duo.port)));
    let api_host = front.url().trim_start_matches("https://").to_string();
    std::fs::write(duo.dir.join("host"), &api_host).unwrap();

    // The system's store: the certificate is refused, no login gets through.
    let server = Server::start(&module, &setup("otp", &api_host, ""));
    assert!(server.auth("alice", "123456").is_reject());
    let log = server.debug_log();
    assert!(log.contains("keys not verified") && log.contains("UnknownIssuer"), "{}", common::tail(&log, 30));
    drop(server);

    for extra in [format!("\tca_file = \"{}\"", ca.ca_file.display()), {
        let dir = duo.dir.join("cas");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&ca.ca_file, dir.join("test-ca.pem")).unwrap();
        format!("\tca_path = \"{}\"", dir.display())
    }] {
        let server = Server::start(&module, &setup("otp", &api_host, &extra));
        let passcode = if extra.contains("ca_file") { "123456" } else { "234567" };
        let reply = server.auth("alice", passcode);
        assert!(reply.is_accept(), "{extra}: {reply:?}\n{}", common::tail(&server.debug_log(), 30));
    }
    assert!(front.handshakes() >= 2);

    let missing = duo.dir.join("no-such-ca.pem");
    let out =
        Server::start_failing(&module, &setup("otp", &api_host, &format!("\tca_file = \"{}\"", missing.display())));
    assert!(out.contains("invalid 'duo.ca_file'") && out.contains("no-such-ca.pem"), "{}", common::tail(&out, 20));
}

#[test]
fn the_menu_offers_each_device_and_the_answer_picks_one() {
    let module = require_module!();
    let duo = require_duo!();
    let server = Server::start(&module, &setup("auto", &duo.api_host(), ""));
    let menu = server.auth("hank", "pw-hank");
    assert!(menu.is_challenge(), "{menu:?}");
    assert_eq!(menu.messages().len(), 1, "the whole menu in one Reply-Message: {menu:?}");
    let lines = menu.lines();
    assert_eq!(lines.len(), 7, "header, 5 choices (no SMS: see below), footer: {lines:?}");
    assert!(lines.contains(&"1. Duo Push to iOS (XXX-XXX-1111)"), "{lines:?}");
    assert!(lines.contains(&"2. Duo Push to Android (XXX-XXX-2222)"), "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with(". A passcode")), "{lines:?}");
    let answer = |typed: &str, state: &str| {
        server.send(&format!("User-Name = \"hank\", User-Password = \"{typed}\", State = {state}\n"))
    };
    let chosen = answer("2", menu.state());
    assert!(chosen.is_accept(), "the push to the second phone, approved: {chosen:?}");
    let pushes: Vec<_> =
        duo.requests().into_iter().filter(|(p, v)| p == "/auth/v2/auth" && v["factor"] == "push").collect();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].1["device"], "DPHANK2", "the device chosen, not device=auto");

    // A number not on the menu asks again; the menu is sealed to hank and this NAS.
    let menu = server.auth("hank", "pw-hank");
    let again = answer("8", menu.state());
    assert!(again.is_challenge(), "{again:?}");
    // Fitted with the longer footer too: still one Reply-Message (the SMS left off).
    assert_eq!(again.messages().len(), 1, "the menu asked again in one Reply-Message: {again:?}");
    assert_eq!(again.lines().last(), Some(&"Enter a number from 1 to 5:"));
    let forged = server.send(&format!("User-Name = \"alice\", User-Password = \"2\", State = {}\n", again.state()));
    assert!(forged.is_reject(), "another user's menu: {forged:?}");
    let count = duo.requests().iter().filter(|(p, _)| p == "/auth/v2/auth").count();
    assert_eq!(count, 1, "no other /auth reached Duo");
}

/// Two servers of a farm sharing a real Redis and the State key, in `mode`.
fn farm_of_two(module: &std::path::Path, redis: &common::redis::RedisServer, mode: &str, duo: &FakeDuo) -> Vec<Server> {
    let setup = setup(mode, &duo.api_host(), "")
        .file("mods-config/mfa/state.key", "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\n")
        .with(&format!("state_store = redis\nredis {{\n\tserver = {}\n\tprefix = t\n}}\n", redis.address()));
    (0..2).map(|_| Server::start(module, &setup)).collect()
}

/// `user`'s login sent to server A, then re-sent (a new RADIUS ID) to server B
/// after `later` while A waits for Duo: both replies.
fn sent_to_a_then_b(servers: &[Server], user: &str, password: &str, later: std::time::Duration) -> (Reply, Reply) {
    std::thread::scope(|s| {
        let first = s.spawn(|| servers[0].auth(user, password));
        std::thread::sleep(later);
        let second = servers[1].auth(user, password);
        (first.join().unwrap(), second)
    })
}

fn auth_calls(duo: &FakeDuo, user: &str) -> usize {
    duo.requests().iter().filter(|(p, v)| p == "/auth/v2/auth" && v["username"] == user).count()
}

#[test]
fn a_push_re_sent_to_the_other_server_joins_the_first_push() {
    let (module, bin) = require_redis!();
    let duo = require_duo!();
    let redis = common::redis::RedisServer::start(&bin);
    let servers = farm_of_two(&module, &redis, "push", &duo);
    let later = std::time::Duration::from_millis(1500);

    let (a, b) = sent_to_a_then_b(&servers, "ivan", "pw-ivan", later);
    assert!(a.is_accept() && b.is_accept(), "{a:?} {b:?}");
    assert_eq!(auth_calls(&duo, "ivan"), 1, "one push for one login, across two servers");
    assert!(servers[1].debug_log().contains("is being decided on another server: joining it"));
    let login_keys = redis.cli(&["KEYS", "t:login:*"]);
    assert_eq!(login_keys.lines().count(), 1, "one login claimed, under a keyed name: {login_keys}");
    assert!(!login_keys.contains("ivan"), "{login_keys}");
    let ttl: i64 = redis.cli(&["TTL", login_keys.trim()]).trim().parse().unwrap();
    assert!(ttl > 0, "the login expires: {ttl}");

    let (a, b) = sent_to_a_then_b(&servers, "judy", "pw-judy", later);
    for reply in [&a, &b] {
        assert_eq!(reply.message(), Some("The login was denied on your device"), "{a:?} {b:?}");
    }
    assert_eq!(auth_calls(&duo, "judy"), 1);
}

#[test]
fn a_passcode_re_sent_to_the_other_server_while_duo_is_slow_is_checked_once() {
    let (module, bin) = require_redis!();
    let duo = require_duo!();
    let redis = common::redis::RedisServer::start(&bin);
    let servers = farm_of_two(&module, &redis, "otp", &duo);
    let (a, b) = sent_to_a_then_b(&servers, "kim", "345678", std::time::Duration::from_millis(500));
    assert!(a.is_accept() && b.is_accept(), "the second is not refused as a used passcode: {a:?} {b:?}");
    assert_eq!(auth_calls(&duo, "kim"), 1, "the passcode went to Duo once");
    assert!(servers[1].debug_log().contains("is being decided on another server: joining it"));
    for server in &servers {
        assert!(!server.debug_log().contains("345678"), "never the passcode");
    }
}

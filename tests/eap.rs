//! 802.1X end to end: a real FreeRADIUS with the stock eap module configured from
//! the shipped mods-available/eap-mfa, sites-available/mfa (outer) and
//! sites-available/mfa-inner-tunnel, a certificate the test makes with openssl, and
//! eapol_test (Debian package eapoltest) as the supplicant.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{now, settle_in_step, totp_at, Server, Setup};

const USERS: &[(&str, &str)] = &[("alice", "secret1")];

/// eapol_test, or None (and a note) when the test cannot run.
fn eapol_test() -> Option<&'static str> {
    let found = Command::new("eapol_test").arg("-h").output().is_ok();
    if !found {
        if std::env::var("RLM_MFA_REQUIRE_INTEGRATION").as_deref() == Ok("1") {
            panic!("eapol_test is missing: install eapoltest (scripts/setup.sh)");
        }
        eprintln!("note: eapol_test is missing; 802.1X test skipped (scripts/setup.sh installs eapoltest)");
        return None;
    }
    Some("eapol_test")
}

/// A self-signed server certificate and its key (PEM), made by openssl for this test.
fn certificate() -> (String, String) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("rlm-mfa-eap-cert-{}-{n}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=radius.test"])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.pem"))
        .output()
        .expect("openssl is missing (scripts/setup.sh installs it)");
    assert!(status.status.success(), "openssl: {}", String::from_utf8_lossy(&status.stderr));
    let pem = fs::read_to_string(dir.join("server.pem")).unwrap();
    let key = fs::read_to_string(dir.join("server.key")).unwrap();
    let _ = fs::remove_dir_all(&dir);
    (pem, key)
}

fn shipped(path: &str) -> String {
    fs::read_to_string(common::repo().join("freeradius-conf").join(path)).unwrap()
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} is not in the shipped file exactly once");
    text.replacen(from, to, 1)
}

/// How the test changes the shipped files.
#[derive(Default, Clone)]
struct Wiring {
    /// Offer every method the stock eap module has (EAP-MD5, MSCHAPv2 outside and
    /// inside, CHAP and MS-CHAP inside TTLS), as Debian's own files do.
    everything: bool,
    /// Leave `mfa` out of the post-auth sections (outer, inner).
    no_outer_check: bool,
    no_inner_check: bool,
    /// otp mode: pap out of the inner `Auth-Type mfa`.
    otp: bool,
    /// Policy lines at the start of the inner authorize.
    inner_policy: Option<&'static str>,
}

fn setup(wiring: &Wiring) -> Setup {
    let (pem, key) = certificate();
    let mut eap = shipped("mods-available/eap-mfa")
        .replace("/etc/ssl/private/ssl-cert-snakeoil.key", "${confdir}/server.key")
        .replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", "${confdir}/server.pem")
        .replace("/etc/ssl/certs/ca-certificates.crt", "${confdir}/server.pem");
    let mut outer = shipped("sites-available/mfa");
    let mut inner = shipped("sites-available/mfa-inner-tunnel");
    let mut files = vec![];
    if wiring.everything {
        eap = replace_once(
            &eap,
            "\tdefault_eap_type = peap\n",
            "\tdefault_eap_type = peap\n\tmd5 {\n\t}\n\tmschapv2 {\n\t}\n",
        );
        eap = replace_once(
            &eap,
            "\tgtc {\n\t\t#\n\t\t#  The prompt",
            "\tmschapv2 {\n\t}\n\tgtc {\n\t\t#\n\t\t#  The prompt",
        );
        inner = replace_once(&inner, "authorize {\n", "authorize {\n\tchap\n\tmschap\n");
        inner = replace_once(
            &inner,
            "\tmfa_inner_eap\n}\n",
            "\tmfa_inner_eap\n\tAuth-Type CHAP {\n\t\tchap\n\t}\n\tAuth-Type MS-CHAP {\n\t\tmschap\n\t}\n}\n",
        );
        files.push(("mods-enabled/chap".to_string(), "chap {\n}\n".to_string()));
        files.push(("mods-enabled/mschap".to_string(), "mschap {\n}\n".to_string()));
    }
    if wiring.no_outer_check {
        outer = replace_once(&outer, "\tmfa\n\n\tPost-Auth-Type REJECT {", "\n\tPost-Auth-Type REJECT {");
    }
    if wiring.no_inner_check {
        inner = replace_once(&inner, "\tmfa\n\n\tPost-Auth-Type REJECT {", "\n\tPost-Auth-Type REJECT {");
    }
    if wiring.otp {
        inner = replace_once(&inner, "\tAuth-Type mfa {\n\t\tpap\n", "\tAuth-Type mfa {\n");
    }
    if let Some(policy) = wiring.inner_policy {
        inner = replace_once(&inner, "authorize {\n", &format!("authorize {{\n{policy}\n"));
    }
    files.push(("mods-enabled/eap-mfa".to_string(), eap));
    files.push(("sites-enabled/mfa-inner-tunnel".to_string(), inner));
    files.push(("server.pem".to_string(), pem));
    files.push(("server.key".to_string(), key));
    let mode = if wiring.otp { "otp" } else { "password+otp" };
    let mut s = Setup::challenge_mode(mode, &common::totp_tokens(&["alice"]), USERS);
    s.site = Some(outer);
    s.files = files;
    s
}

/// One eapol_test login; true when it ended in SUCCESS (an Access-Accept with EAP-Success).
fn login(server: &Server, eap: &str, phase2: Option<&str>, outer_identity: Option<&str>, password: &str) -> bool {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let conf = server.dir.join(format!("eapol-{n}.conf"));
    let mut text = format!(
        "network={{\n\tssid=\"test\"\n\tkey_mgmt=WPA-EAP\n\teap={eap}\n\tidentity=\"alice\"\n\tpassword=\"{password}\"\n\tca_cert=\"{}\"\n",
        server.dir.join("server.pem").display()
    );
    if let Some(anonymous) = outer_identity {
        text.push_str(&format!("\tanonymous_identity=\"{anonymous}\"\n"));
    }
    if let Some(p) = phase2 {
        text.push_str(&format!("\tphase2=\"{p}\"\n"));
    }
    text.push_str("}\n");
    fs::write(&conf, text).unwrap();
    let out = Command::new("eapol_test")
        .arg("-c")
        .arg(&conf)
        .args(["-a", "127.0.0.1", "-p", &server.port.to_string(), "-s", common::SECRET, "-t", "20"])
        // EAP-MD5 derives no keys: -n, or eapol_test counts the login as failed.
        .args(if eap == "MD5" { &["-n"][..] } else { &[][..] })
        .output()
        .expect("eapol_test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    out.status.success() && stdout.trim_end().ends_with("SUCCESS")
}

fn count(server: &Server, text: &str) -> usize {
    server.debug_log().matches(text).count()
}

fn start(module: &Path, wiring: &Wiring) -> Server {
    Server::start(module, &setup(wiring))
}

#[test]
fn ttls_pap_and_peap_gtc_take_password_and_code_once() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    let server = start(&module, &Wiring::default());
    settle_in_step(20);
    let t = now();
    let (code, next) = (totp_at(t), totp_at(t + 30));
    let anon = Some("anonymous");

    // A wrong password with the right code: refused before the code is looked at.
    assert!(!login(&server, "TTLS", Some("auth=PAP"), anon, &format!("wrong,{code}")));
    assert!(login(&server, "TTLS", Some("auth=PAP"), anon, &format!("secret1,{code}")), "TTLS/PAP");
    assert!(!login(&server, "TTLS", Some("auth=PAP"), anon, &format!("secret1,{code}")), "TTLS/PAP replay");

    assert!(!login(&server, "PEAP", Some("auth=GTC"), anon, &format!("wrong,{next}")));
    assert!(!login(&server, "PEAP", Some("auth=GTC"), anon, "secret1"), "PEAP/GTC without a code");
    assert!(login(&server, "PEAP", Some("auth=GTC"), anon, &format!("secret1,{next}")), "PEAP/GTC");
    assert!(!login(&server, "PEAP", Some("auth=GTC"), anon, &format!("secret1,{next}")), "PEAP/GTC replay");
    // The outer check saw both verified logins through the inner tunnel.
    assert_eq!(count(&server, "was verified inside the tunnel"), 2);
}

#[test]
fn otp_mode_takes_the_code_alone_through_ttls_pap_and_peap_gtc() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    let server = start(&module, &Wiring { otp: true, ..Wiring::default() });
    settle_in_step(20);
    let t = now();
    let (code, next) = (totp_at(t), totp_at(t + 30));
    assert!(login(&server, "TTLS", Some("auth=PAP"), Some("anonymous"), &code), "TTLS/PAP");
    assert!(!login(&server, "TTLS", Some("auth=PAP"), Some("anonymous"), &code), "replay");
    assert!(login(&server, "PEAP", Some("auth=GTC"), Some("anonymous"), &next), "PEAP/GTC");
    assert!(!login(&server, "PEAP", Some("auth=GTC"), Some("anonymous"), &next), "replay");
}

/// The methods that carry no code, each with the password alone.
const PASSWORD_ONLY: &[(&str, Option<&str>, bool)] = &[
    ("PEAP", Some("auth=MSCHAPV2"), true),
    ("TTLS", Some("auth=MSCHAPV2"), true),
    ("TTLS", Some("autheap=MSCHAPV2"), true),
    ("TTLS", Some("auth=CHAP"), true),
    // No tunnel: the outer identity is the user.
    ("MD5", None, false),
];

#[test]
fn the_password_alone_is_refused_through_every_other_method() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    // Without the post-auth check, each of them logs in on the password alone:
    // the wiring offers them, and nothing else stops them.
    let open =
        start(&module, &Wiring { everything: true, no_outer_check: true, no_inner_check: true, ..Wiring::default() });
    for (eap, phase2, tunnel) in PASSWORD_ONLY {
        let outer = tunnel.then_some("anonymous");
        assert!(login(&open, eap, *phase2, outer, "secret1"), "{eap} {phase2:?} should get in without the check");
    }
    // And the module says so at start-up, for each site that lacks it.
    assert_eq!(count(&open, "does not list it in post-auth"), 2, "{}", common::tail(&open.debug_log(), 40));
    drop(open);

    let server = start(&module, &Wiring { everything: true, ..Wiring::default() });
    assert_eq!(count(&server, "does not list it in post-auth"), 0);
    for (i, (eap, phase2, tunnel)) in PASSWORD_ONLY.iter().enumerate() {
        let outer = tunnel.then_some("anonymous");
        assert!(!login(&server, eap, *phase2, outer, "secret1"), "{eap} {phase2:?} got in on the password alone");
        assert_eq!(count(&server, "without the second factor, through"), i + 1, "{eap} {phase2:?}: one log line");
    }
    let log = server.debug_log();
    for path in [
        "Auth-Type \"mfa_inner_eap\", EAP-Type \"MSCHAPv2\", virtual server \"mfa-inner-tunnel\"",
        "Auth-Type \"MS-CHAP\", virtual server \"mfa-inner-tunnel\"",
        "Auth-Type \"CHAP\", virtual server \"mfa-inner-tunnel\"",
        "Auth-Type \"eap\", EAP-Type \"MD5\", virtual server \"mfa\"",
    ] {
        assert!(log.contains(path), "no log line names {path}");
    }
}

#[test]
fn the_outer_check_alone_refuses_an_inner_tunnel_without_it() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    let server = start(&module, &Wiring { everything: true, no_inner_check: true, ..Wiring::default() });
    for outer in ["anonymous", "alice"] {
        assert!(!login(&server, "PEAP", Some("auth=MSCHAPV2"), Some(outer), "secret1"), "outer identity {outer}");
    }
    assert_eq!(count(&server, "the inner tunnel let \"alice\" in without the second factor"), 2);
    // A code still gets in.
    settle_in_step(10);
    let code = totp_at(now());
    assert!(login(&server, "TTLS", Some("auth=PAP"), Some("anonymous"), &format!("secret1,{code}")));
}

#[test]
fn a_policy_that_sets_auth_type_first_is_refused() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    // Inside the tunnel: Auth-Type := PAP before mfa, then TTLS/PAP with the password alone.
    let policy = "\tupdate control {\n\t\t&Auth-Type := PAP\n\t}";
    let server = start(&module, &Wiring { inner_policy: Some(policy), ..Wiring::default() });
    assert!(!login(&server, "TTLS", Some("auth=PAP"), Some("anonymous"), "secret1"));
    assert_eq!(count(&server, "control:Auth-Type is already \"PAP\""), 1);
    assert_eq!(count(&server, "without the second factor, through Auth-Type \"PAP\""), 1);
    drop(server);

    // Outside, over plain RADIUS: Auth-Type := Accept, or PAP, before mfa.
    for auth_type in ["Accept", "PAP"] {
        let mut s = setup(&Wiring::default());
        let site = s.site.take().unwrap();
        s.site = Some(replace_once(
            &site,
            "authorize {\n",
            &format!("authorize {{\n\tupdate control {{\n\t\t&Auth-Type := {auth_type}\n\t}}\n"),
        ));
        let server = Server::start(&module, &s);
        let reply = server.auth("alice", "secret1");
        assert!(reply.is_reject(), "Auth-Type := {auth_type}: {reply:?}");
        assert_eq!(count(&server, &format!("without the second factor, through Auth-Type \"{auth_type}\"")), 1);
    }
}

//! 802.1X end to end: a real FreeRADIUS with the stock eap module configured from
//! the shipped mods-available/eap-mfa, sites-available/mfa (outer) and
//! sites-available/mfa-inner-tunnel, a certificate the test makes with openssl, and
//! eapol_test (Debian package eapoltest) as the supplicant.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::fake_push::{FakePush, PushBehaviour};
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
    /// The module's mode, when not the one `otp` picks.
    mode: Option<&'static str>,
    /// More lines for the module's section (a `push { }`).
    module_extra: Option<String>,
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
    let mode = wiring.mode.unwrap_or(if wiring.otp { "otp" } else { "password+otp" });
    let mut s = Setup::challenge_mode(mode, &common::totp_tokens(&["alice"]), USERS);
    if let Some(extra) = &wiring.module_extra {
        s = s.with(extra);
    }
    s.site = Some(outer);
    s.files = files;
    s
}

/// One eapol_test login; true when it ended in SUCCESS (an Access-Accept with EAP-Success).
fn login(server: &Server, eap: &str, phase2: Option<&str>, outer_identity: Option<&str>, password: &str) -> bool {
    login_as(server, "alice", eap, phase2, outer_identity, password)
}

fn login_as(
    server: &Server,
    user: &str,
    eap: &str,
    phase2: Option<&str>,
    outer_identity: Option<&str>,
    password: &str,
) -> bool {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let conf = server.dir.join(format!("eapol-{n}.conf"));
    let mut text = format!(
        "network={{\n\tssid=\"test\"\n\tkey_mgmt=WPA-EAP\n\teap={eap}\n\tidentity=\"{user}\"\n\tpassword=\"{password}\"\n\tca_cert=\"{}\"\n",
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
    // Both modes: in otp mode rlm_eap replacing Auth-Type mfa let PEAP/MSCHAPv2 in with
    // the password alone (issue 17).
    for otp in [false, true] {
        let mode = if otp { "otp" } else { "password+otp" };
        // Without the post-auth check, each of them logs in on the password alone:
        // the wiring offers them, and nothing else stops them.
        let wiring = Wiring { everything: true, otp, ..Wiring::default() };
        let open = start(&module, &Wiring { no_outer_check: true, no_inner_check: true, ..wiring.clone() });
        for (eap, phase2, tunnel) in PASSWORD_ONLY {
            let outer = tunnel.then_some("anonymous");
            assert!(
                login(&open, eap, *phase2, outer, "secret1"),
                "{mode}: {eap} {phase2:?} should get in without the check"
            );
        }
        // And the module says so at start-up, for each site that lacks it.
        assert_eq!(count(&open, "does not list it in post-auth"), 2, "{}", common::tail(&open.debug_log(), 40));
        drop(open);

        let server = start(&module, &wiring);
        assert_eq!(count(&server, "does not list it in post-auth"), 0);
        for (i, (eap, phase2, tunnel)) in PASSWORD_ONLY.iter().enumerate() {
            let outer = tunnel.then_some("anonymous");
            assert!(
                !login(&server, eap, *phase2, outer, "secret1"),
                "{mode}: {eap} {phase2:?} got in on the password alone"
            );
            assert_eq!(
                count(&server, "without the second factor, through"),
                i + 1,
                "{mode}: {eap} {phase2:?}: one log line"
            );
        }
        let log = server.debug_log();
        for path in [
            "Auth-Type \"mfa_inner_eap\", EAP-Type \"MSCHAPv2\", virtual server \"mfa-inner-tunnel\"",
            "Auth-Type \"MS-CHAP\", virtual server \"mfa-inner-tunnel\"",
            "Auth-Type \"CHAP\", virtual server \"mfa-inner-tunnel\"",
            "Auth-Type \"eap\", EAP-Type \"MD5\", virtual server \"mfa\"",
        ] {
            assert!(log.contains(path), "{mode}: no log line names {path}");
        }
    }
}

#[test]
fn peap_gtc_takes_the_password_alone_of_a_user_without_token_when_require_token_is_off() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    // bob has a password and no token: with require_token = no the module does not take
    // him, in TTLS/PAP (pap alone) as in PEAP/GTC (Auth-Type mfa_gtc, where pap decides).
    for otp in [false, true] {
        let mut s = setup(&Wiring { otp, ..Wiring::default() }).with("require_token = no");
        s.users.push(("bob".into(), "bobs-secret".into()));
        let server = Server::start(&module, &s);
        let anon = Some("anonymous");
        assert!(login_as(&server, "bob", "TTLS", Some("auth=PAP"), anon, "bobs-secret"), "otp {otp}: TTLS/PAP");
        assert!(login_as(&server, "bob", "PEAP", Some("auth=GTC"), anon, "bobs-secret"), "otp {otp}: PEAP/GTC");
        assert!(!login_as(&server, "bob", "PEAP", Some("auth=GTC"), anon, "wrong"), "otp {otp}: a wrong password");
        // alice has a token: her password alone is still refused.
        assert!(!login(&server, "PEAP", Some("auth=GTC"), anon, "secret1"), "otp {otp}: alice without a code");
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
        // Refused in post-auth: the shipped site's Post-Auth-Type REJECT gives the words.
        assert_eq!(reply.message(), Some("Wrong user name or password"), "Auth-Type := {auth_type}");
        assert_eq!(count(&server, &format!("without the second factor, through Auth-Type \"{auth_type}\"")), 1);
    }
}

#[test]
fn a_code_sent_as_user_password_next_to_inner_gtc_does_not_replace_the_password() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    // Inside TTLS the client sends the inner attributes itself: a modified supplicant can
    // send User-Password = "x,<code>" next to its EAP-GTC response. eapol_test cannot, so
    // a policy at the start of the inner authorize adds it, as TTLS would deliver it.
    // Kept in authorize, that code satisfied Auth-Type mfa_gtc's first mfa (ok = return)
    // and the password was never checked.
    settle_in_step(20);
    let code = totp_at(now());
    let mut s = setup(&Wiring::default());
    let (_, inner) = s.files.iter_mut().find(|(path, _)| path == "sites-enabled/mfa-inner-tunnel").unwrap();
    *inner = replace_once(
        inner,
        "authorize {\n",
        &format!("authorize {{\n\tif (&EAP-Message) {{\n\t\tupdate request {{\n\t\t\t&User-Password := \"x,{code}\"\n\t\t}}\n\t}}\n"),
    );
    let server = Server::start(&module, &s);
    assert!(!login(&server, "TTLS", Some("autheap=GTC"), Some("anonymous"), "wrong"), "the code alone got in");
    assert!(
        count(&server, "both an EAP-Message and a User-Password") >= 1,
        "{}",
        common::tail(&server.debug_log(), 60)
    );
}

#[test]
fn a_user_password_next_to_an_eap_message_never_reaches_the_outer_site() {
    let module = require_module!();
    // The outer site in password-then-otp, a request with User-Password, a made-up State
    // and an EAP-Message: were it processed, the State would skip pap. FreeRADIUS drops
    // such a packet on receipt, so only an inner-tunnel request (TTLS builds
    // it from what the client sent) can carry both; the module refuses those
    // (a_code_sent_as_user_password_next_to_inner_gtc_does_not_replace_the_password).
    let mut s = Setup::challenge_mode("password-then-otp", &common::totp_tokens(&["alice"]), USERS);
    s.site = Some(shipped("sites-available/mfa"));
    let server = Server::start(&module, &s);
    let reply = server.send_with(
        &["-r", "1", "-t", "2"],
        &format!(
            "User-Name = \"alice\", User-Password = \"wrong\", State = 0x{}, EAP-Message = 0x020300060678, \
             Message-Authenticator = 0x00\n",
            "5a".repeat(24)
        ),
    );
    assert!(!reply.is_accept() && !reply.is_challenge(), "{reply:?}");
    assert_eq!(count(&server, "Packet contains EAP-Message and non-EAP authentication attribute"), 1);
}

#[test]
fn gtc_needs_both_pap_and_the_second_mfa() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    // What README says of Auth-Type mfa_gtc: the first factor between the two calls is
    // the only check of the password part. FreeRADIUS ranks the second mfa's ok above
    // the split's updated, so without pap the code alone gets in...
    settle_in_step(20);
    let code = totp_at(now());
    let without = |from: &str, to: &str| {
        let mut s = setup(&Wiring::default());
        let (_, inner) = s.files.iter_mut().find(|(path, _)| path == "sites-enabled/mfa-inner-tunnel").unwrap();
        *inner = replace_once(inner, from, to);
        Server::start(&module, &s)
    };
    let server = without("\t\tpap\n#\t\tldap\n\t\tmfa\n", "\t\tmfa\n");
    assert!(login(&server, "PEAP", Some("auth=GTC"), Some("anonymous"), &format!("wrong,{code}")));
    drop(server);
    // ...and without the second mfa, pap's ok ends the section and post-auth refuses.
    let server = without("\t\tpap\n#\t\tldap\n\t\tmfa\n\t}", "\t\tpap\n\t}");
    assert!(!login(&server, "PEAP", Some("auth=GTC"), Some("anonymous"), &format!("secret1,{code}")));
    assert_eq!(count(&server, "without the second factor, through Auth-Type \"mfa_inner_eap\", EAP-Type \"GTC\""), 1);
}

/// EAP-GTC's first `mfa` call comes before `pap` checks the password: a push mode
/// there would send the push (and an approval would get in) with the password never
/// checked. It is refused, and no push is sent; TTLS/PAP, where `pap` runs first,
/// serves a push mode as plain RADIUS does.
#[test]
fn peap_gtc_refuses_a_push_mode_before_any_push() {
    let module = require_module!();
    if eapol_test().is_none() {
        return;
    }
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let push = format!("push {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n}}", provider.url());
    for mode in ["push", "otp-or-push"] {
        let wiring = Wiring { mode: Some(mode), module_extra: Some(push.clone()), ..Wiring::default() };
        let server = start(&module, &wiring);
        let before = provider.created();
        assert!(!login(&server, "PEAP", Some("auth=GTC"), Some("anonymous"), "not-the-password"), "{mode}");
        assert!(!login(&server, "PEAP", Some("auth=GTC"), Some("anonymous"), "secret1"), "{mode}");
        assert!(count(&server, &format!("mode {mode} cannot serve EAP-GTC")) >= 2, "{mode}");
        assert_eq!(provider.created(), before, "{mode}: no push sent");
        assert!(login(&server, "TTLS", Some("auth=PAP"), Some("anonymous"), "secret1"), "{mode}: TTLS/PAP");
        assert!(!login(&server, "TTLS", Some("auth=PAP"), Some("anonymous"), "not-the-password"), "{mode}");
    }
    assert_eq!(provider.created(), 2, "one push per TTLS/PAP login with the password");
}

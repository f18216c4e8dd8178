//! MS-CHAPv2 in otp mode through a real FreeRADIUS: a NAS that speaks only
//! MS-CHAPv2 (Windows RRAS, L2TP/IPsec) sends the code as the password. The
//! requests come from tests/mschap/client.py (RFC 2759 with passlib's MD4 and
//! DES, not rlm_mfa's code), and the oracle is FreeRADIUS's own mschap module:
//! in the same server, given the code as the user's password, it must accept
//! the same request and answer with the same MS-CHAP2-Success and MPPE keys.
//! scripts/mschap.sh installs passlib into .deps/mschap-venv; without it the
//! test is skipped, unless `RLM_MFA_REQUIRE_MSCHAP=1`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Server, Setup};

/// RFC 4226 appendix D: the HOTP codes of the secret "12345678901234567890".
const RFC_HOTP: [&str; 4] = ["755224", "287082", "359152", "969429"];

fn venv_python() -> Option<PathBuf> {
    common::venv::python("mschap", "MS-CHAPv2 client")
}

/// What the NAS sends for `user` typing `password`: the radclient attributes.
fn client(python: &PathBuf, user: &str, password: &str) -> String {
    let out = Command::new(python)
        .arg(common::repo().join("tests/mschap/client.py"))
        .args([user, password])
        .output()
        .expect("run tests/mschap/client.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// rlm_mfa for requests from NAS "vpn"; FreeRADIUS's mschap, with the users
/// file's Cleartext-Password, for those from NAS "oracle"; for NAS "both", a
/// site that keeps mschap in authorize, with mfa before it (README, MS-CHAP).
const SITE: &str = r#"server mfa {
listen {
	type = auth
	ipaddr = *
	port = 1812
}
authorize {
	if (&NAS-Identifier == "oracle") {
		files
		mschap
	}
	elsif (&NAS-Identifier == "both") {
		mfa
		files
		mschap
	}
	else {
		mfa
	}
}
authenticate {
	Auth-Type mfa {
		mfa
	}
	Auth-Type MS-CHAP {
		mschap
	}
}
post-auth {
	Post-Auth-Type REJECT {
		ok
	}
}
}
"#;

const KEYS: [&str; 5] = [
    "MS-CHAP2-Success",
    "MS-MPPE-Recv-Key",
    "MS-MPPE-Send-Key",
    "MS-MPPE-Encryption-Policy",
    "MS-MPPE-Encryption-Types",
];

#[test]
fn a_code_by_mschapv2_is_accepted_once_with_the_reply_freeradius_mschap_gives() {
    let module = require_module!();
    let Some(python) = venv_python() else { return };
    let tokens = r#"{"users": {"alice": {"tokens": [{"serial": "H1", "type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}]}}}"#;
    let mut setup = Setup::otp_mode(tokens);
    // The oracle knows the code that rlm_mfa will check as the user's password.
    setup.users = vec![("alice".into(), RFC_HOTP[1].into())];
    setup.site = Some(SITE.into());
    setup.files.push(("mods-enabled/mschap".into(), "mschap {\n}\n".into()));
    let server = Server::start(&module, &setup);

    // The first code, then the second: HOTP moves on (look-ahead) as the NAS's user types.
    let first = client(&python, "alice", RFC_HOTP[0]);
    let ok = server.send(&format!("User-Name = \"alice\", NAS-Identifier = \"vpn\", {first}\n"));
    assert!(ok.is_accept(), "{ok:?}");

    let second = client(&python, "alice", RFC_HOTP[1]);
    let oracle = server.send(&format!("User-Name = \"alice\", NAS-Identifier = \"oracle\", {second}\n"));
    assert!(oracle.is_accept(), "FreeRADIUS's mschap refuses the client's request: {oracle:?}");
    let ours = server.send(&format!("User-Name = \"alice\", NAS-Identifier = \"vpn\", {second}\n"));
    assert!(ours.is_accept(), "{ours:?}");
    for key in KEYS {
        assert!(oracle.attr(key).is_some(), "mschap gives {key}: {oracle:?}");
        assert_eq!(ours.attr(key), oracle.attr(key), "{key} as FreeRADIUS's mschap gives it");
    }

    // The same answer again (a replay), and a wrong code.
    let replay = server.send(&format!("User-Name = \"alice\", NAS-Identifier = \"vpn\", {second}\n"));
    assert!(replay.is_reject(), "{replay:?}");
    assert_eq!(replay.attr("MS-CHAP2-Success"), None);
    let wrong = client(&python, "alice", "000000");
    let oracle = server.send(&format!("User-Name = \"alice\", NAS-Identifier = \"oracle\", {wrong}\n"));
    let wrong = server.send(&format!("User-Name = \"alice\", NAS-Identifier = \"vpn\", {wrong}\n"));
    assert!(wrong.is_reject(), "{wrong:?}");
    // MS-CHAP-Error as FreeRADIUS's mschap words it, but for the retry flag (a new
    // code is a new login) and the fresh challenge, random in both.
    let error = |reply: &common::Reply| {
        let text = reply.attr("MS-CHAP-Error").unwrap_or_else(|| panic!("no MS-CHAP-Error: {reply:?}")).to_string();
        let words: Vec<String> = text
            .split(' ')
            .map(|w| if w.starts_with("C=") { "C=<challenge>".into() } else { w.replace("R=1", "R=0") })
            .collect();
        words.join(" ")
    };
    assert!(oracle.is_reject(), "{oracle:?}");
    assert_eq!(error(&wrong), error(&oracle), "ours: {wrong:?}\nmschap's: {oracle:?}");
    assert!(wrong.attr("MS-CHAP-Error").unwrap().contains(" R=0 "), "{wrong:?}");
    assert!(server.debug_log().contains("sent a wrong MS-CHAPv2 answer"));
    assert!(!server.debug_log().contains(RFC_HOTP[1]), "no code in the log");

    // mschap left in authorize, after mfa: it sees Auth-Type set and steps aside.
    let third = client(&python, "alice", RFC_HOTP[2]);
    let both = server.send(&format!("User-Name = \"alice\", NAS-Identifier = \"both\", {third}\n"));
    assert!(both.is_accept() && both.attr("MS-CHAP2-Success").is_some(), "{both:?}");
    assert!(server.debug_log().contains("Auth-Type already set.  Not setting to MS-CHAP"));
}

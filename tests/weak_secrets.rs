//! Secrets shorter than RFC 4226's 128 bits: mfa-admin refuses to enroll one;
//! the module loads one (deployed tokens use 80 bits) with one warning naming
//! the user, at start-up and after a reload, never showing the secret.

mod common;

use common::{now, settle_in_step, totp_at, write_private, Server, Setup};

/// 80 bits: "1234567890" in base32.
const SHORT: &str = "GEZDGNBVGY3TQOJQ";

#[test]
fn enroll_refuses_a_secret_under_128_bits() {
    let dir = common::repo().join("target/integration").join(format!("weak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.json");
    let out = common::admin_with_stdin(&tokens, &["enroll", "carol", "--secret-file", "-", "--no-qr"], SHORT);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is 80 bits; a new token needs at least 128"), "{err}");
    assert!(!err.contains(SHORT));
    assert!(!tokens.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tokens_with(user: &str, secret: &str) -> String {
    format!(
        r#"{{"users": {{"{user}": {{"tokens": [{{"serial": "T-{user}", "type": "totp", "secret": "{secret}"}}]}}}}}}"#
    )
}

#[test]
fn the_module_warns_about_a_short_secret_naming_the_user() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&tokens_with("walter", SHORT)));
    let warning = "token file: user \"walter\" has a secret shorter than 128 bits (token T-walter)";
    let log = server.debug_log();
    assert_eq!(log.matches(warning).count(), 1, "one warning at start-up:\n{}", common::tail(&log, 40));
    assert!(!log.contains(SHORT));

    // Still usable: the warning is for the administrator.
    settle_in_step(5);
    let code = mfa_core::factor::otp::hotp_code(b"1234567890", now() / 30, 6, mfa_core::factor::otp::Algorithm::Sha1);
    assert!(server.auth("walter", &code).is_accept());

    // After a reload, again for the new file's user.
    write_private(&server.tokens_path(), &tokens_with("xena", SHORT));
    common::wait_for_reload();
    assert!(server.auth("xena", &totp_at(now())).is_reject());
    let log = server.debug_log();
    assert!(log.contains("user \"xena\" has a secret shorter than 128 bits"), "{}", common::tail(&log, 40));
    assert!(!log.contains(SHORT));
}

//! mfa-admin beside a running FreeRADIUS: with `ignore_case`, both find users
//! and their state by one rule (mfa_core::identity::case), so that what
//! mfa-admin lists, unlocks, resynchronises or consumes is what the module uses.
//! And mfa-admin alone: runs at once lose no edit (the token file's edit lock),
//! and a given secret never comes from the command line.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{now, settle_in_step, totp_at, Server, Setup, SEED_B32};
use mfa_core::factor::otp::{hotp_code, Algorithm};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hotp(counter: u64) -> String {
    hotp_code(b"12345678901234567890", counter, 6, Algorithm::Sha1)
}

#[test]
fn with_ignore_case_in_the_module_mfa_admin_acts_on_the_entry_the_module_uses() {
    let module = require_module!();
    let tokens = format!(
        r#"{{"users": {{
            "Alice": {{"tokens": [{{"serial": "T-alice", "type": "totp", "secret": "{SEED_B32}"}}]}},
            "BOB": {{"tokens": [{{"serial": "H-bob", "type": "hotp", "secret": "{SEED_B32}"}}]}}
        }}}}"#
    );
    let setup = Setup::otp_mode(&tokens).with("ignore_case = yes\nlockout {\n max_failures = 3\n duration = 600\n}");
    let server = Server::start(&module, &setup);
    settle_in_step(10);

    // The module takes a code as "ALICE"; check --consume for "Alice" sees it used.
    // No --ignore-case: mfa-admin reads ignore_case from the module's configuration (--module).
    let code = totp_at(now());
    assert!(server.auth("ALICE", &code).is_accept());
    let out = server.admin(&["check", "Alice", &code, "--consume"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("already used"), "{}", stdout(&out));

    // Locked as "alice": list and unlock under any case find that lockout.
    for _ in 0..3 {
        assert!(server.auth("alice", "000000").is_reject());
    }
    let out = server.admin(&["list", "aLiCe"]);
    assert!(stdout(&out).contains("LOCKED for"), "{}", stdout(&out));
    let out = server.admin(&["unlock", "Alice"]);
    assert!(stdout(&out).contains("had 3 failure(s)"), "{}", stdout(&out));
    let out = server.admin(&["list"]);
    assert!(stdout(&out).contains("not locked, 0 failure(s)"), "{}", stdout(&out));
    let after = server.auth("alice", "000000");
    assert_eq!(after.message(), Some("Wrong or already used code"), "the module's lock on \"alice\" is lifted");

    // A code consumed by mfa-admin is refused by the module.
    let next = totp_at(now() + 30);
    let out = server.admin(&["check", "alice", &next, "--consume"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(server.auth("Alice", &next).is_reject(), "a consumed code is used");

    // resync moves the counter the module uses for "bob" (the option says the same as the module).
    let out = server.admin(&["--ignore-case", "resync", "bob", &hotp(5), &hotp(6)]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(server.auth("bob", &hotp(6)).is_reject(), "resync moved the counter past 6");
    assert!(server.auth("Bob", &hotp(7)).is_accept());

    // The option overrides the module: with --ignore-case=no, mfa-admin says which entry was meant.
    let out = server.admin(&["--ignore-case=no", "list", "alice"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"Alice\" differs only by case") && err.contains("--ignore-case"), "{err}");

    // enroll adds to the existing entry instead of making a second one the module refuses.
    let out = server.admin(&["enroll", "ALICE", "--no-qr"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = server.admin(&["list"]);
    assert!(!stdout(&out).lines().any(|l| l == "ALICE"), "{}", stdout(&out));
}

/// mfa-admin on files of its own, without a server.
fn admin(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::admin_bin())
        .arg("--tokens")
        .arg(dir.join("tokens.json"))
        .arg("--state")
        .arg(dir.join("state.jsonl"))
        .args(args)
        .output()
        .unwrap()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = common::repo().join("target/integration").join(format!("admin-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn runs_at_once_lose_no_edit() {
    let dir = scratch("concurrent");
    // Rounds of runs started together, each adding a user of its own; a run that read
    // the file before another's rename and wrote after it would drop that user.
    let runs = 12;
    for round in 0..3 {
        let children: Vec<_> = (0..runs)
            .map(|i| {
                Command::new(common::admin_bin())
                    .arg("--tokens")
                    .arg(dir.join("tokens.json"))
                    .arg("--state")
                    .arg(dir.join("state.jsonl"))
                    .args(["enroll", &format!("user{round}-{i}"), "--no-qr"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let listed = stdout(&admin(&dir, &["list"]));
    let users = listed.lines().filter(|l| l.starts_with("user")).count();
    assert_eq!(users, 3 * runs, "edits were lost:\n{listed}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_secret_is_read_from_standard_input_or_a_file_never_the_command_line() {
    let dir = scratch("secret");
    let out = admin(&dir, &["enroll", "carol", "--secret", SEED_B32, "--no-qr"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--secret-file") && !err.contains(SEED_B32), "{err}");
    assert!(!dir.join("tokens.json").exists(), "nothing enrolled");

    let enroll = ["enroll", "carol", "--secret-file", "-", "--no-qr"];
    let out = common::admin_with_stdin(&dir.join("tokens.json"), &enroll, &format!("{SEED_B32}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains(&format!("secret={SEED_B32}")), "the enrolled secret is the one given");

    fs::write(dir.join("seed"), format!("  {SEED_B32}\n")).unwrap();
    let out = admin(&dir, &["enroll", "dave", "--secret-file", dir.join("seed").to_str().unwrap(), "--no-qr"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let code = totp_at(now());
    let out = admin(&dir, &["check", "dave", &code]);
    assert!(out.status.success(), "{}", stdout(&out));
    fs::remove_dir_all(&dir).unwrap();
}

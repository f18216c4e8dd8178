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

/// A code of the seed's token at `counter`.
fn code_of(counter: u64, digits: u32, algorithm: Algorithm) -> String {
    hotp_code(b"12345678901234567890", counter, digits, algorithm)
}

/// The serial `enroll` printed ("enrolled SERIAL for ...").
fn enrolled_serial(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(out);
    text.strip_prefix("enrolled ").and_then(|rest| rest.split(' ').next()).unwrap_or_else(|| panic!("{text}")).into()
}

/// What enroll's options say is what the module and `code` then use: the type, the
/// algorithm, the digits, the period, the description and the issuer in the URI;
/// `remove --serial` takes one token and leaves the others.
#[test]
fn enroll_options_make_the_token_the_module_accepts() {
    let module = require_module!();
    let tokens = format!(
        r#"{{"users": {{"bob": {{"tokens": [{{"serial": "T-bob", "type": "totp", "secret": "{SEED_B32}"}}]}}}}}}"#
    );
    let server = Server::start(&module, &Setup::otp_mode(&tokens));
    let enroll = [
        "enroll",
        "erin",
        "--algorithm",
        "SHA256",
        "--digits",
        "8",
        "--period",
        "60",
        "--description",
        "Erin's phone",
        "--issuer",
        "ACME VPN",
        "--secret-file",
        "-",
        "--no-qr",
    ];
    let out = server.admin_with_input(&enroll, SEED_B32);
    let totp = enrolled_serial(&out);
    let uri = stdout(&out).lines().nth(1).unwrap_or_default().to_string();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    for part in ["algorithm=SHA256", "digits=8", "period=60", &format!("secret={SEED_B32}")] {
        assert!(uri.contains(part), "{part} in {uri}");
    }
    assert!(uri.contains("issuer=ACME%20VPN") && uri.contains("ACME%20VPN:erin"), "{uri}");
    let listed = stdout(&server.admin(&["list", "erin"]));
    assert!(listed.contains("SHA256") && listed.contains("8 digits") && listed.contains("period 60s"), "{listed}");
    assert!(listed.contains("\"Erin's phone\""), "{listed}");

    let out = server.admin_with_input(&["enroll", "erin", "--type", "hotp", "--secret-file", "-", "--no-qr"], SEED_B32);
    let hotp = enrolled_serial(&out);
    assert!(stdout(&out).lines().nth(1).unwrap_or_default().starts_with("otpauth://hotp/"), "{}", stdout(&out));
    common::wait_for_reload();

    // code --serial picks the token; the module takes both codes.
    let step = loop {
        let t = now();
        if 60 - t % 60 >= 8 {
            break t / 60;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let code = stdout(&server.admin(&["code", "erin", "--serial", &totp])).trim().to_string();
    assert_eq!(code, code_of(step, 8, Algorithm::Sha256));
    assert!(server.auth("erin", &code).is_accept());
    let code = stdout(&server.admin(&["code", "erin", "--serial", &hotp])).trim().to_string();
    assert_eq!(code, code_of(0, 6, Algorithm::Sha1));
    assert!(server.auth("erin", &code).is_accept());
    // The counter moved past it: `code` now prints the next one.
    let next = stdout(&server.admin(&["code", "erin", "--serial", &hotp])).trim().to_string();
    assert_eq!(next, code_of(1, 6, Algorithm::Sha1));

    let out = server.admin(&["remove", "erin", "--serial", &hotp]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = stdout(&server.admin(&["list", "erin"]));
    assert!(listed.contains(&totp) && !listed.contains(&hotp), "{listed}");
    common::wait_for_reload();
    assert!(server.auth("erin", &code_of(2, 6, Algorithm::Sha1)).is_reject(), "the removed token's codes are refused");
    assert!(stdout(&server.admin(&["list", "bob"])).contains("T-bob"), "other users are left alone");
}

/// `contact` sets where codes are sent and `""` clears one; `groups` sets the
/// user's groups and none clears them.
#[test]
fn contact_and_groups_set_and_clear() {
    let dir = scratch("contact");
    let out = common::admin_with_stdin(
        &dir.join("tokens.json"),
        &["enroll", "fay", "--secret-file", "-", "--no-qr"],
        SEED_B32,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |user: &str| -> serde_json::Value {
        let text = fs::read_to_string(dir.join("tokens.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["users"][user].clone()
    };

    let out = admin(&dir, &["contact", "fay", "--sms", "+4512345612", "--email", "fay@example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        (read("fay")["sms"].as_str(), read("fay")["email"].as_str()),
        (Some("+4512345612"), Some("fay@example.com"))
    );
    let listed = stdout(&admin(&dir, &["list", "fay"]));
    assert!(listed.contains("sms    +4512345612") && listed.contains("email  fay@example.com"), "{listed}");

    let out = admin(&dir, &["contact", "fay", "--sms", ""]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(read("fay").get("sms").is_none_or(|v| v.is_null()), "{}", read("fay"));
    assert_eq!(read("fay")["email"].as_str(), Some("fay@example.com"), "the other one stays");
    assert!(!admin(&dir, &["contact", "fay"]).status.success(), "neither option: refused");

    let out = admin(&dir, &["groups", "fay", "vpn-users", "staff"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read("fay")["groups"], serde_json::json!(["vpn-users", "staff"]));
    let out = admin(&dir, &["groups", "fay"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(read("fay")["groups"].as_array().is_none_or(|g| g.is_empty()), "{}", read("fay"));
    fs::remove_dir_all(&dir).unwrap();
}

/// MFA_TOKENS, MFA_STATE, MFA_MODULE and MFA_IGNORE_CASE stand in for the options,
/// and an option wins over its variable.
#[test]
fn the_environment_names_the_files_and_the_case_rule() {
    let dir = scratch("environment");
    fs::write(dir.join("mfa"), "mfa {\n\tignore_case = yes\n}\n").unwrap();
    let run = |args: &[&str], env: &[(&str, &Path)], input: Option<&str>| -> Output {
        let mut command = Command::new(common::admin_bin());
        command.env_remove("MFA_TOKENS").env_remove("MFA_STATE").env_remove("MFA_MODULE").env_remove("MFA_IGNORE_CASE");
        for (name, value) in env {
            command.env(name, value);
        }
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.unwrap_or("").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let (tokens, state, module) = (dir.join("tokens.json"), dir.join("state.jsonl"), dir.join("mfa"));
    let env = [("MFA_TOKENS", tokens.as_path()), ("MFA_STATE", state.as_path()), ("MFA_MODULE", module.as_path())];

    let out = run(&["enroll", "Gus", "--type", "hotp", "--secret-file", "-", "--no-qr"], &env, Some(SEED_B32));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(tokens.is_file(), "MFA_TOKENS names the token file");
    // ignore_case = yes from MFA_MODULE: "gus" is Gus, and the code is recorded in MFA_STATE.
    let out = run(&["check", "gus", &hotp(0), "--consume"], &env, None);
    assert!(stdout(&out).starts_with("match: "), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let journal = fs::read_to_string(&state).unwrap_or_default();
    assert!(
        journal.contains("\"gus\""),
        "MFA_STATE names the journal, the state kept under the lower-case name: {journal}"
    );

    // MFA_IGNORE_CASE=no overrides the module's ignore_case, and --ignore-case=yes overrides that.
    let mut strict: Vec<(&str, &Path)> = env.to_vec();
    strict.push(("MFA_IGNORE_CASE", Path::new("no")));
    assert!(!run(&["check", "gus", &hotp(1)], &strict, None).status.success(), "case counts with MFA_IGNORE_CASE=no");
    let out = run(&["--ignore-case=yes", "check", "gus", &hotp(1)], &strict, None);
    assert!(stdout(&out).starts_with("match: "), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));

    // --tokens wins over MFA_TOKENS.
    let other = dir.join("other.json");
    let out = run(&["--tokens", other.to_str().unwrap(), "enroll", "hal", "--no-qr"], &env, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(fs::read_to_string(&other).unwrap().contains("\"hal\""));
    assert!(!fs::read_to_string(&tokens).unwrap().contains("\"hal\""));
    fs::remove_dir_all(&dir).unwrap();
}

/// `check` matches in the module's own `totp_window` and `hotp_look_ahead` (read
/// from --module), an option given wins, and a value the module would refuse is refused.
#[test]
fn check_matches_in_the_modules_windows() {
    let dir = scratch("windows");
    let module = dir.join("mfa");
    fs::write(&module, "mfa {\n\ttotp_window = 3\n\thotp_look_ahead = 20\n}\n").unwrap();
    let with_module = |args: &[&str]| {
        let mut all = vec!["--module", module.to_str().unwrap()];
        all.extend_from_slice(args);
        admin(&dir, &all)
    };
    let enroll = ["enroll", "ida", "--type", "hotp", "--secret-file", "-", "--no-qr"];
    let out = common::admin_with_stdin(&dir.join("tokens.json"), &enroll, SEED_B32);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let enroll = ["enroll", "jan", "--secret-file", "-", "--no-qr"];
    let out = common::admin_with_stdin(&dir.join("tokens.json"), &enroll, SEED_B32);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // HOTP counter 15: past the default look-ahead of 10, within the module's 20.
    assert_eq!(admin(&dir, &["check", "ida", &hotp(15)]).status.code(), Some(1), "default look-ahead");
    let out = with_module(&["check", "ida", &hotp(15)]);
    assert!(stdout(&out).starts_with("match: "), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let narrowed = with_module(&["check", "ida", &hotp(15), "--look-ahead", "5"]);
    assert_eq!(narrowed.status.code(), Some(1), "the option wins: {}", stdout(&narrowed));

    // TOTP three steps ahead: outside the default window of 1, inside the module's 3.
    let ahead = totp_at(now() + 90);
    assert_eq!(admin(&dir, &["check", "jan", &ahead]).status.code(), Some(1), "default window");
    let out = with_module(&["check", "jan", &ahead]);
    assert!(stdout(&out).starts_with("match: "), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let narrowed = with_module(&["check", "jan", &ahead, "--window", "1"]);
    assert_eq!(narrowed.status.code(), Some(1), "the option wins: {}", stdout(&narrowed));

    fs::write(&module, "mfa {\n\thotp_look_ahead = 5000\n}\n").unwrap();
    let refused = with_module(&["check", "ida", &hotp(15)]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("hotp_look_ahead \"5000\" is not within 0 to 1000 codes"), "{err}");
    // An option outside the module's range is refused too, naming the item.
    for (option, value, item) in [("--window", "11", "totp_window"), ("--look-ahead", "5000", "hotp_look_ahead")] {
        let refused = admin(&dir, &["check", "ida", &hotp(15), option, value]);
        assert_eq!(refused.status.code(), Some(2), "{option}");
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains(&format!("{option} {value} is not within")) && err.contains(item), "{err}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

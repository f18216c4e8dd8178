//! End-to-end tests: a real FreeRADIUS with rlm_mfa loaded, driven by radclient.
//! See tests/common/mod.rs for the harness.

mod common;

use common::{now, settle_in_step, totp_at, totp_tokens, write_private, Server, Setup};

/// RFC 4226 appendix D: HOTP codes 0..9 of the seed "12345678901234567890".
const HOTP: [&str; 10] =
    ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];

fn hotp_tokens(user: &str) -> String {
    format!(
        r#"{{"users": {{"{user}": {{"tokens": [{{"serial": "H-{user}", "type": "hotp", "secret": "{}"}}]}}}}}}"#,
        common::SEED_B32
    )
}

#[test]
fn otp_mode_accepts_a_right_code_once() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&totp_tokens(&["alice"])));
    settle_in_step(5);
    let code = totp_at(now());

    let reply = server.auth("alice", &code);
    assert!(reply.is_accept(), "{reply:?}");

    let replay = server.auth("alice", &code);
    assert!(replay.is_reject(), "{replay:?}");
    assert_eq!(replay.message(), Some("Wrong or already used code"));
    assert!(server.debug_log().contains("used (replayed)"));

    let wrong = server.auth("alice", if code == "000000" { "111111" } else { "000000" });
    assert!(wrong.is_reject());
    assert_eq!(wrong.message(), Some("Wrong or already used code"));
}

#[test]
fn otp_mode_accepts_the_previous_step_within_the_window() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&totp_tokens(&["alice"])));
    settle_in_step(5);
    let previous = totp_at(now() - 30);
    assert!(server.auth("alice", &previous).is_accept());
    // An older code than the one accepted is refused (replay protection by step).
    let older = totp_at(now() - 60);
    assert!(server.auth("alice", &older).is_reject());
}

#[test]
fn hotp_counter_moves_past_each_accepted_code() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&hotp_tokens("bob")));
    assert!(server.auth("bob", HOTP[0]).is_accept());
    assert!(server.auth("bob", HOTP[0]).is_reject(), "an HOTP code is good once");
    // Look-ahead: skipping codes 1 and 2 is fine...
    assert!(server.auth("bob", HOTP[3]).is_accept());
    // ...but the skipped ones are now behind the counter.
    assert!(server.auth("bob", HOTP[1]).is_reject());
    assert!(server.auth("bob", HOTP[4]).is_accept());
}

#[test]
fn password_otp_mode_checks_the_password_with_the_first_factor() {
    let module = require_module!();
    let setup = Setup::password_otp_mode(&totp_tokens(&["alice"]), &[("alice", "mySecret1")]);
    let server = Server::start(&module, &setup);
    settle_in_step(8);
    let code = totp_at(now());

    // A wrong password is refused by pap before the code is looked at: the code stays unused.
    let wrong_password = server.auth("alice", &format!("nope,{code}"));
    assert!(wrong_password.is_reject(), "{wrong_password:?}");

    let no_separator = server.auth("alice", &format!("mySecret1{code}"));
    assert!(no_separator.is_reject());
    assert_eq!(
        no_separator.message(),
        Some("Enter your password, then a comma, then the code from your authenticator")
    );

    let reply = server.auth("alice", &format!("mySecret1,{code}"));
    assert!(reply.is_accept(), "{reply:?}");
    assert!(server.auth("alice", &format!("mySecret1,{code}")).is_reject(), "replayed");
}

#[test]
fn password_otp_mode_with_the_code_first_and_a_password_holding_the_separator() {
    let module = require_module!();
    let setup = Setup::password_otp_mode(&totp_tokens(&["carol"]), &[("carol", "pa:ss")])
        .with("separator = \":\"\notp_position = first");
    let server = Server::start(&module, &setup);
    settle_in_step(5);
    let reply = server.auth("carol", &format!("{}:pa:ss", totp_at(now())));
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn lockout_after_consecutive_failures_and_admin_unlock() {
    let module = require_module!();
    let setup = Setup::otp_mode(&totp_tokens(&["alice"])).with("lockout {\n max_failures = 3\n duration = 600\n}");
    let server = Server::start(&module, &setup);
    settle_in_step(10);
    let code = totp_at(now());
    let wrong = if code == "123456" { "654321" } else { "123456" };

    assert_eq!(server.auth("alice", wrong).message(), Some("Wrong or already used code"));
    assert_eq!(server.auth("alice", wrong).message(), Some("Wrong or already used code"));
    let third = server.auth("alice", wrong);
    assert!(third.is_reject());
    assert!(third.message().unwrap().starts_with("Too many failed attempts: try again in 600 seconds"), "{third:?}");

    // Locked: even the right code is refused, and is not used up.
    let locked = server.auth("alice", &code);
    assert!(locked.is_reject());
    assert!(locked.message().unwrap().starts_with("Too many failed attempts"), "{locked:?}");

    let out = server.admin(&["unlock", "alice"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply = server.auth("alice", &code);
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn a_success_resets_the_failure_count() {
    let module = require_module!();
    let setup = Setup::otp_mode(&hotp_tokens("bob")).with("lockout {\n max_failures = 2\n duration = 600\n}");
    let server = Server::start(&module, &setup);
    assert!(server.auth("bob", "000000").is_reject());
    assert!(server.auth("bob", HOTP[0]).is_accept());
    let after = server.auth("bob", "000000");
    assert_eq!(after.message(), Some("Wrong or already used code"), "one failure after a success does not lock");
    assert!(server.auth("bob", HOTP[1]).is_accept());
}

#[test]
fn malformed_requests_get_a_reject_with_a_reason_and_the_server_goes_on() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&totp_tokens(&["alice"])));

    let no_password = server.send("User-Name = \"alice\"\n");
    assert!(no_password.is_reject(), "{no_password:?}");
    assert_eq!(no_password.message(), Some("The code must be 6 digits"));

    let empty = server.auth("alice", "");
    assert!(empty.is_reject());

    let long = server.auth("alice", &"9".repeat(253));
    assert_eq!(long.message(), Some("The code must be 6 digits"));

    let letters = server.auth("alice", "12a456");
    assert_eq!(letters.message(), Some("The code must be 6 digits"));

    let not_utf8 = server.send("User-Name = \"al\\377ice\", User-Password = \"123456\"\n");
    assert!(not_utf8.is_reject(), "{not_utf8:?}");
    assert_eq!(not_utf8.message(), Some("Malformed user name"));

    let empty_user_part = server.auth("@example.com", "123456");
    assert_eq!(empty_user_part.message(), Some("Malformed user name"));
    let empty_realm = server.auth("alice@@", "123456");
    assert_eq!(empty_realm.message(), Some("Malformed user name"));

    let unknown = server.auth("mallory", "123456");
    assert_eq!(unknown.message(), Some("No second factor is enrolled for this user"));

    // Still serving.
    settle_in_step(5);
    assert!(server.auth("alice", &totp_at(now())).is_accept());
    let log = server.debug_log();
    assert!(log.contains("not valid UTF-8"));
    assert!(log.contains("has no token enrolled"));
}

#[test]
fn realm_forms_reach_the_bare_user() {
    let module = require_module!();
    let tokens = totp_tokens(&["alice"]);

    // user@realm, split at the last "@".
    let server = Server::start(&module, &Setup::otp_mode(&tokens));
    settle_in_step(10);
    let reply = server.auth("alice@example.com", &totp_at(now()));
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(reply.attr("Filter-Id"), Some("alice|example.com"));
    drop(server);

    // DOMAIN\user.
    let server = Server::start(&module, &Setup::otp_mode(&tokens).with("realm {\n delimiter = \"\\\\\"\n}"));
    settle_in_step(5);
    let reply = server.auth("CORP\\alice", &totp_at(now()));
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(reply.attr("Filter-Id"), Some("alice|CORP"));
    drop(server);

    // Split at the first delimiter: "alice@a@b" is user "alice", realm "a@b".
    let server = Server::start(&module, &Setup::otp_mode(&tokens).with("realm {\n split = first\n}"));
    settle_in_step(5);
    let reply = server.auth("alice@a@b", &totp_at(now()));
    assert!(reply.is_accept(), "{reply:?}");
    assert_eq!(reply.attr("Filter-Id"), Some("alice|a@b"));
    drop(server);

    // Realm first with "@": "example.com@alice".
    let server = Server::start(&module, &Setup::otp_mode(&tokens).with("realm {\n position = prefix\n}"));
    settle_in_step(5);
    assert!(server.auth("example.com@alice", &totp_at(now())).is_accept());
    drop(server);

    // strip = no: the whole name is looked up, so "alice@example.com" is not "alice".
    let server = Server::start(&module, &Setup::otp_mode(&tokens).with("realm {\n strip = no\n}"));
    let reply = server.auth("alice@example.com", &totp_at(now()));
    assert_eq!(reply.message(), Some("No second factor is enrolled for this user"));
}

#[test]
fn user_map_and_suffix_choose_the_token_store_name() {
    let module = require_module!();
    let tokens = totp_tokens(&["alice@corp.example"]);
    let setup = Setup::otp_mode(&tokens)
        .with("user_suffix = \"@corp.example\"\nuser_map = ${modconfdir}/mfa/user-map")
        .file("mods-config/mfa/user-map", "ALICE.SMITH alice\n");
    let server = Server::start(&module, &setup);
    settle_in_step(5);
    let reply = server.auth("ALICE.SMITH", &totp_at(now()));
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn kill_9_loses_no_accepted_code() {
    let module = require_module!();
    let tokens = {
        let mut t: serde_json::Value = serde_json::from_str(&totp_tokens(&["alice"])).unwrap();
        let hotp: serde_json::Value = serde_json::from_str(&hotp_tokens("bob")).unwrap();
        t["users"]["bob"] = hotp["users"]["bob"].clone();
        t.to_string()
    };
    let mut server = Server::start(&module, &Setup::otp_mode(&tokens));
    settle_in_step(10);
    let code = totp_at(now());
    assert!(server.auth("alice", &code).is_accept());
    assert!(server.auth("bob", HOTP[0]).is_accept());
    assert!(server.auth("bob", HOTP[1]).is_accept());

    server.restart(); // kill -9, then start again on the same files
    assert!(server.auth("alice", &code).is_reject(), "TOTP code accepted again after kill -9");
    assert!(server.auth("bob", HOTP[1]).is_reject(), "HOTP counter went backwards after kill -9");
    assert!(server.auth("bob", HOTP[2]).is_accept());
}

#[test]
fn token_file_changes_are_picked_up_and_a_broken_one_is_refused() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&totp_tokens(&["alice"])));
    settle_in_step(10);
    assert_eq!(server.auth("dave", "123456").message(), Some("No second factor is enrolled for this user"));

    write_private(&server.tokens_path(), &totp_tokens(&["alice", "dave"]));
    common::wait_for_reload();
    let reply = server.auth("dave", &totp_at(now()));
    assert!(reply.is_accept(), "{reply:?}");

    // A broken file: the last good copy stays in use, and the log says why.
    write_private(&server.tokens_path(), "{ not json");
    common::wait_for_reload();
    assert!(server.auth("alice", &totp_at(now())).is_accept());
    assert!(server.debug_log().contains("keeping the last good copy"));

    // Readable by everyone: refused as well.
    write_private(&server.tokens_path(), &totp_tokens(&["erin"]));
    std::fs::set_permissions(server.tokens_path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    common::wait_for_reload();
    assert_eq!(server.auth("erin", "123456").message(), Some("No second factor is enrolled for this user"));
}

#[test]
fn enrolled_with_mfa_admin_and_accepted() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(r#"{"users": {}}"#));
    let out = server.admin_with_input(&["enroll", "frank", "--secret-file", "-", "--no-qr"], common::SEED_B32);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("otpauth://totp/"), "{text}");
    common::wait_for_reload();
    settle_in_step(5);
    let reply = server.auth("frank", &totp_at(now()));
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn groups_set_with_mfa_admin_become_reply_attributes() {
    let module = require_module!();
    let setup = Setup::otp_mode(r#"{"users": {}}"#)
        .with("reply Class {\n\tfrom = \"user.groups\"\n\tmatch = \"^vpn-(.*)$\"\n\tprefix = \"grp-\"\n}");
    let server = Server::start(&module, &setup);
    let out = server.admin_with_input(&["enroll", "gina", "--secret-file", "-", "--no-qr"], common::SEED_B32);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = server.admin(&["groups", "gina", "vpn-sales", "staff", "vpn-admins"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    common::wait_for_reload();
    settle_in_step(5);
    let reply = server.auth("gina", &totp_at(now()));
    assert!(reply.is_accept(), "{reply:?}");
    // Class is an octets attribute: radclient prints it in hex.
    let hex = |text: &str| format!("0x{}", text.bytes().map(|b| format!("{b:02x}")).collect::<String>());
    let classes: Vec<&str> = reply.attrs.iter().filter(|(n, _)| n == "Class").map(|(_, v)| v.as_str()).collect();
    assert_eq!(classes, [hex("grp-sales"), hex("grp-admins")]);
}

#[test]
fn invalid_configuration_stops_freeradius_with_the_item_named() {
    let module = require_module!();
    let tokens = totp_tokens(&["alice"]);
    let out = Server::start_failing(&module, &Setup::otp_mode(&tokens).with("mode = sms"));
    assert!(out.contains("invalid 'mode'"), "{}", common::tail(&out, 20));

    let out = Server::start_failing(&module, &Setup::otp_mode(&tokens).with("totp_window = 1000"));
    assert!(out.contains("invalid 'totp_window'"), "{}", common::tail(&out, 20));

    let out = Server::start_failing(&module, &Setup::otp_mode(&tokens).with("realm {\n delimiter = \"#\"\n}"));
    assert!(out.contains("invalid 'realm.delimiter'"), "{}", common::tail(&out, 20));

    let locked_for_nothing = "lockout {\n max_failures = 3\n duration = 0\n}";
    let out = Server::start_failing(&module, &Setup::otp_mode(&tokens).with(locked_for_nothing));
    assert!(out.contains("invalid 'lockout.duration'"), "{}", common::tail(&out, 20));

    // FreeRADIUS's own number parsing would read these as 0 (no lockout) and 7.
    let out = Server::start_failing(&module, &Setup::otp_mode(&tokens).with("lockout {\n max_failures = five\n}"));
    assert!(
        out.contains(r#"invalid 'lockout.max_failures': "five" is not a whole number"#),
        "{}",
        common::tail(&out, 20)
    );
    let out = Server::start_failing(&module, &Setup::otp_mode(&tokens).with("totp_window = 1step"));
    assert!(out.contains(r#"invalid 'totp_window': "1step" is not a whole number"#), "{}", common::tail(&out, 20));

    let out = Server::start_failing(&module, &Setup::otp_mode(&tokens).with("tokens = /nonexistent/tokens.json"));
    assert!(out.contains("invalid 'tokens'") && out.contains("/nonexistent/tokens.json"), "{}", common::tail(&out, 20));
}

#[test]
fn a_token_file_others_can_read_stops_freeradius() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&totp_tokens(&["alice"])));
    std::fs::set_permissions(server.tokens_path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = server.check_config_fails();
    assert!(out.contains("invalid 'tokens'"), "{}", common::tail(&out, 20));
}

#[test]
fn the_shipped_configuration_works_as_is() {
    let module = require_module!();
    let mut setup = Setup::password_otp_mode(&totp_tokens(&["alice"]), &[("alice", "mySecret1")]);
    setup.shipped = true;
    let server = Server::start(&module, &setup);
    settle_in_step(5);
    let reply = server.auth("alice@example.com", &format!("mySecret1,{}", totp_at(now())));
    assert!(reply.is_accept(), "{reply:?}");
    let reply = server.auth("alice", "mySecret1,000000");
    assert!(reply.is_reject());
    let reply = server.auth("alice", &format!("wrong,{}", totp_at(now())));
    assert_eq!(reply.message(), Some("Wrong user name or password"));
}

#[test]
fn no_secret_reaches_the_debug_log() {
    let module = require_module!();
    let setup = Setup::password_otp_mode(&totp_tokens(&["alice"]), &[("alice", "mySecret1")]);
    let server = Server::start(&module, &setup);
    settle_in_step(5);
    let code = totp_at(now());
    assert!(server.auth("alice", &format!("mySecret1,{code}")).is_accept());
    assert!(server.auth("alice", &format!("mySecret1,{code}")).is_reject());
    assert!(server.auth("alice", "mySecret1,000001").is_reject());
    let log = server.debug_log();
    for secret in [common::SEED_B32, "12345678901234567890", code.as_str(), "000001", "mySecret1"] {
        assert!(!log.contains(secret), "the debug log holds a secret ({secret})");
    }
}

/// One token per user, each with its own seed: distinct codes, so that replay
/// protection does not refuse the second user's code.
fn many_users(n: usize) -> (String, Vec<(String, Vec<u8>)>) {
    let users: Vec<(String, Vec<u8>)> =
        (0..n).map(|i| (format!("user{i}"), format!("seed-for-user-{i:08}-xyz").into_bytes())).collect();
    let entries: Vec<String> = users
        .iter()
        .map(|(name, seed)| {
            let b32 = data_encoding::BASE32_NOPAD.encode(seed);
            format!(r#""{name}": {{"tokens": [{{"serial": "T-{name}", "type": "totp", "secret": "{b32}"}}]}}"#)
        })
        .collect();
    (format!(r#"{{"users": {{{}}}}}"#, entries.join(", ")), users)
}

#[test]
fn parallel_logins_on_the_threaded_server_are_all_answered_right() {
    let module = require_module!();
    let (tokens, users) = many_users(300);
    let server = Server::start(&module, &Setup::otp_mode(&tokens));
    settle_in_step(12);
    let now = now();
    let mut packets: Vec<String> = users
        .iter()
        .map(|(name, seed)| {
            let code = mfa_core::factor::otp::hotp_code(seed, now / 30, 6, mfa_core::factor::otp::Algorithm::Sha1);
            format!("User-Name = \"{name}\", User-Password = \"{code}\"\n")
        })
        .collect();
    let (accepted, rejected, lost) = server.send_many(&packets, 32);
    assert_eq!((accepted, rejected, lost), (300, 0, 0));

    // The same codes again, in parallel: every one is a replay.
    for p in &mut packets {
        p.push_str("Response-Packet-Type = Access-Reject\n");
    }
    let (accepted, rejected, lost) = server.send_many(&packets, 32);
    assert_eq!((accepted, rejected, lost), (0, 300, 0));
}

#[test]
fn hotp_resync_with_mfa_admin_brings_a_drifted_token_back() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&hotp_tokens("bob")));
    let code = |c: u64| {
        mfa_core::factor::otp::hotp_code(b"12345678901234567890", c, 6, mfa_core::factor::otp::Algorithm::Sha1)
    };
    // The token was pressed 50 times away from the server: beyond the look-ahead of 10.
    assert!(server.auth("bob", &code(50)).is_reject());
    let out = server.admin(&["resync", "bob", &code(51), &code(52)]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(server.auth("bob", &code(52)).is_reject(), "resync codes are used");
    assert!(server.auth("bob", &code(53)).is_accept());
}

#[test]
fn mfa_admin_list_check_and_remove() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&totp_tokens(&["alice", "bob"])));
    assert!(server.auth("alice", "000000").is_reject());

    let list = server.admin(&["list"]);
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("alice") && text.contains("bob") && text.contains("T-alice"), "{text}");
    assert!(!text.contains(common::SEED_B32), "list shows no secret");

    settle_in_step(5);
    let code = totp_at(now());
    let check = server.admin(&["check", "alice", &code]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let wrong = server.admin(&["check", "alice", "000000"]);
    assert_eq!(wrong.status.code(), Some(1));
    // check without --consume leaves the code usable.
    assert!(server.auth("alice", &code).is_accept());

    let removed = server.admin(&["remove", "bob"]);
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    common::wait_for_reload();
    assert_eq!(server.auth("bob", &totp_at(now())).message(), Some("No second factor is enrolled for this user"));
}

/// The default `detailed_messages = no`: before any password is checked, an
/// unknown, an unenrolled and a locked user read alike, so that the answers do
/// not tell an attacker which accounts exist; the log says what happened.
#[test]
fn before_a_password_is_checked_unknown_unenrolled_and_locked_users_read_alike() {
    let module = require_module!();
    let tokens = r#"{"users": {"alice": {"tokens": [{"serial": "T1", "type": "totp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}]}, "bob": {}}}"#;
    let lockout = "lockout {\n max_failures = 2\n duration = 600\n}";
    let otp = Server::start(&module, &Setup::otp_mode(tokens).with("detailed_messages = no").with(lockout));
    let wrong = otp.auth("alice", "000000");
    assert_eq!(wrong.message(), Some("Wrong or already used code"));
    assert_eq!(otp.auth("nobody", "123456").message(), wrong.message());
    assert_eq!(otp.auth("bob", "123456").message(), wrong.message());
    otp.auth("alice", "000000");
    let locked = otp.auth("alice", &totp_at(now()));
    assert!(locked.is_reject(), "{locked:?}");
    assert_eq!(locked.message(), wrong.message());
    assert!(otp.debug_log().contains("\"alice\" is locked for"), "the log names the lock");

    // password+otp: a locked user is refused before the password, as a wrong password is.
    let users = [("alice", "pw"), ("carol", "pw")];
    let setup = Setup::password_otp_mode(tokens, &users).with("detailed_messages = no").with(lockout);
    let server = Server::start(&module, &setup);
    for _ in 0..2 {
        server.auth("alice", "pw,000000");
    }
    let locked = server.auth("alice", &format!("pw,{}", totp_at(now())));
    let wrong_password = server.auth("carol", "nope,123456");
    assert!(locked.is_reject() && wrong_password.is_reject());
    assert_eq!(locked.message(), None, "{locked:?}");
    assert_eq!(wrong_password.message(), None, "{wrong_password:?}");
}

/// Mode otp, default `detailed_messages = no`: a malformed code ("abc", too short,
/// too long) gets the same reply (code and attributes) from an enrolled user, an
/// unenrolled one and one not in the token file, so that neither the account nor
/// its code length shows; the log still names the cause.
#[test]
fn in_otp_mode_a_malformed_code_reads_alike_for_every_user() {
    let module = require_module!();
    let tokens = r#"{"users": {"alice": {"tokens": [{"serial": "T1", "type": "totp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}]}, "bob": {}}}"#;
    // No lock in the way: a locked user reads as a wrong code anyway.
    let lockout = "lockout {\n max_failures = 100\n duration = 600\n}";
    let server = Server::start(&module, &Setup::otp_mode(tokens).with("detailed_messages = no").with(lockout));
    // The reply's code and attributes, without the Message-Authenticator that
    // FreeRADIUS 3.2.7 signs every reply with (it differs from packet to packet).
    let shown = |reply: &common::Reply| {
        let attrs: Vec<_> = reply.attrs.iter().filter(|(name, _)| name != "Message-Authenticator").cloned().collect();
        (reply.code.clone(), attrs)
    };
    for code in ["abc", "1", "1234567890"] {
        let unknown = server.auth("nobody", code);
        assert!(unknown.is_reject(), "{unknown:?}");
        assert_eq!(unknown.message(), Some("Wrong or already used code"));
        for user in ["alice", "bob"] {
            let reply = server.auth(user, code);
            assert_eq!(shown(&reply), shown(&unknown), "{user} sent {code}");
        }
    }
    assert!(server.debug_log().contains("\"alice\" sent a code that is not 6 digits"), "the log names the cause");
}

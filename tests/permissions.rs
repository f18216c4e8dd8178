//! Permissions as documented, through FreeRADIUS: a token file its group can
//! write (0660) or others can read, a state journal or a State key its group or
//! others can write: each refused when opened, with an error naming the file
//! and its mode.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{now, settle_in_step, totp_at, Server, Setup};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Stops `server`, sets `path` to `mode` and checks that the configuration is refused
/// with an error naming the file and the mode.
fn refused_at_start(server: &mut Server, path: &Path, mode: u32) -> String {
    server.kill9();
    chmod(path, mode);
    let out = server.check_config_fails();
    let shown = format!("{mode:04o}");
    assert!(
        out.contains(&path.display().to_string()) && out.contains(&shown),
        "{} and {shown} not named in:\n{}",
        path.display(),
        common::tail(&out, 20)
    );
    out
}

#[test]
fn a_token_file_its_group_can_write_is_refused() {
    let module = require_module!();
    let mut server = Server::start(&module, &Setup::otp_mode(&common::totp_tokens(&["alice"])));
    let tokens = server.tokens_path();
    let out = refused_at_start(&mut server, &tokens, 0o660);
    assert!(out.contains("invalid 'tokens'") && out.contains("0640 or stricter"), "{}", common::tail(&out, 10));
    for mode in [0o604, 0o620] {
        refused_at_start(&mut server, &tokens, mode);
    }
}

#[test]
fn a_token_file_made_group_writable_is_not_reloaded() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&common::totp_tokens(&["alice"])));
    // A new version with bob, group-writable: refused, the last good copy stays.
    let tokens = server.tokens_path();
    fs::write(&tokens, common::totp_tokens(&["alice", "bob"])).unwrap();
    chmod(&tokens, 0o660);
    common::wait_for_reload();
    settle_in_step(5);
    assert!(server.auth("bob", &totp_at(now())).is_reject());
    let log = server.debug_log();
    assert!(log.contains("token file not reloaded") && log.contains("has mode 0660"), "{}", common::tail(&log, 20));
    assert!(server.auth("alice", &totp_at(now())).is_accept(), "the last good copy is used");
}

#[test]
fn a_state_journal_others_can_write_is_refused() {
    let module = require_module!();
    let mut server = Server::start(&module, &Setup::otp_mode(&common::totp_tokens(&["alice"])));
    let journal = server.state_path();
    assert!(journal.exists());
    for mode in [0o620, 0o602, 0o666] {
        let out = refused_at_start(&mut server, &journal, mode);
        assert!(out.contains("invalid 'state'") && out.contains("chmod 600"), "{}", common::tail(&out, 10));
    }
}

#[test]
fn a_state_key_others_can_write_is_refused() {
    let module = require_module!();
    let setup = Setup::challenge_mode("password-then-otp", &common::totp_tokens(&["alice"]), &[("alice", "pw")])
        .file("mods-config/mfa/state.key", KEY);
    let mut server = Server::start(&module, &setup);
    let key = server.dir.join("mods-config/mfa/state.key");
    for mode in [0o620, 0o602] {
        let out = refused_at_start(&mut server, &key, mode);
        assert!(out.contains("invalid 'state_key'"), "{}", common::tail(&out, 10));
    }
}

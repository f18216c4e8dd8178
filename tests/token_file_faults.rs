//! The token file goes wrong while the server runs: replaced by rename, replaced by
//! a broken one, truncated to nothing or in the middle of a line, made unreadable,
//! deleted. The module keeps the last good copy (its users still log in), says why
//! in the log, and takes the next good file.
//!
//! "Unreadable": chmod 000 stops a reader that is not root, and only then. Under
//! root (FreeRADIUS and the tests often run so) the file is replaced with a
//! directory and with a dangling symlink, which stop any reader; chmod 000 is
//! tried too when not root.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{wait_for_reload, write_private, Server, Setup, SEED_B32};

const KEPT: &str = "token file not reloaded, keeping the last good copy";
const NOT_ENROLLED: &str = "No second factor is enrolled for this user";

/// HOTP tokens on the RFC 4226 seed, one per user: no clock in this test.
fn tokens(users: &[&str]) -> String {
    let users: Vec<String> = users
        .iter()
        .map(|u| format!(r#""{u}": {{"tokens": [{{"serial": "H-{u}", "type": "hotp", "secret": "{SEED_B32}"}}]}}"#))
        .collect();
    format!(r#"{{"users": {{{}}}}}"#, users.join(",\n"))
}

/// Logs in with each user's next HOTP code, counting per user.
struct Logins<'a> {
    server: &'a Server,
    next: HashMap<String, u64>,
}

impl Logins<'_> {
    fn accepted(&mut self, user: &str) -> bool {
        self.login(user).is_accept()
    }

    /// One login with the user's next code; the counter moves on when it is accepted.
    fn login(&mut self, user: &str) -> common::Reply {
        let counter = self.next.entry(user.to_string()).or_insert(0);
        let code = mfa_core::factor::otp::hotp_code(
            b"12345678901234567890",
            *counter,
            6,
            mfa_core::factor::otp::Algorithm::Sha1,
        );
        let reply = self.server.auth(user, &code);
        if reply.is_accept() {
            *counter += 1;
        }
        reply
    }

    fn not_enrolled(&self, user: &str) -> bool {
        self.server.auth(user, "000000").message() == Some(NOT_ENROLLED)
    }

    /// After a fault: the last good copy still serves `users`, and the log has one
    /// more "keeping the last good copy" line, holding `why`.
    fn kept(&mut self, case: &str, users: &[&str], why: &str) {
        let before = self.server.debug_log().matches(KEPT).count();
        wait_for_reload();
        for user in users {
            let reply = self.login(user);
            assert!(reply.is_accept(), "{case}: {user} lost the last good copy: {reply:?}");
        }
        let log = self.server.debug_log();
        assert_eq!(log.matches(KEPT).count(), before + 1, "{case}: no log line says the file was refused");
        let line = log.lines().rfind(|l| l.contains(KEPT)).unwrap();
        assert!(line.contains(why), "{case}: the log line does not say {why:?}: {line}");
        assert!(!log.contains(SEED_B32), "{case}: the log shows a secret");
    }

    /// After a good file: `users` log in and `gone` are no longer known.
    fn picked_up(&mut self, case: &str, users: &[&str], gone: &[&str]) {
        wait_for_reload();
        for user in users {
            let reply = self.login(user);
            assert!(reply.is_accept(), "{case}: {user} is not in the new file: {reply:?}");
        }
        for user in gone {
            assert!(self.not_enrolled(user), "{case}: {user} is still known");
        }
    }
}

/// Writes over the file in place (same inode), as an editor or `>` does.
fn overwrite(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}

/// Whether the tests run as root: the files they create belong to root.
fn is_root(dir: &Path) -> bool {
    std::os::unix::fs::MetadataExt::uid(&fs::metadata(dir).unwrap()) == 0
}

#[test]
fn the_last_good_copy_serves_through_every_fault_and_the_next_good_file_is_taken() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&tokens(&["alice", "bob"])));
    let path = server.tokens_path();
    let mut logins = Logins { server: &server, next: HashMap::new() };
    assert!(logins.accepted("alice"));

    // Replaced by rename with a good file.
    write_private(&path, &tokens(&["alice", "carol"]));
    logins.picked_up("renamed good file", &["alice", "carol"], &["bob"]);
    assert!(server.debug_log().contains("(2 users)"), "the reload is logged");

    // Replaced by rename with broken ones: not JSON, then JSON with a bad token.
    write_private(&path, r#"{"users": {"alice": {"tokens": [{"serial": "#);
    logins.kept("renamed broken file", &["alice", "carol"], "EOF while parsing");
    let bad_secret = tokens(&["alice", "dave"])
        .replace(&format!(r#""secret": "{SEED_B32}"}}]}}"#), r#""secret": "not base32 !"}]}"#);
    write_private(&path, &bad_secret);
    logins.kept("renamed file with a bad token", &["alice", "carol"], "not valid base32");
    assert!(logins.not_enrolled("dave"));

    // Truncated to nothing, in place; then a good file again.
    fs::File::options().write(true).open(&path).unwrap().set_len(0).unwrap();
    logins.kept("truncated to zero", &["alice", "carol"], "line 1 column 0");
    overwrite(&path, &tokens(&["alice", "dave"]));
    logins.picked_up("good file after truncation", &["alice", "dave"], &["carol"]);

    // Truncated in the middle of a line (the secret of the second user cut).
    let good = tokens(&["alice", "dave", "erin"]);
    let cut = good.rfind(SEED_B32).unwrap() + SEED_B32.len() / 2;
    overwrite(&path, &good[..cut]);
    logins.kept("truncated mid-line", &["alice", "dave"], "EOF while parsing a string");
    assert!(logins.not_enrolled("erin"));
    overwrite(&path, &good);
    logins.picked_up("good file after a cut one", &["erin"], &[]);

    // Unreadable. chmod 000 stops only a reader that is not root.
    if !is_root(&server.dir) {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        logins.kept("chmod 000", &["alice", "erin"], "ermission denied");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        logins.picked_up("readable again", &["alice"], &[]);
    }
    // A directory in its place.
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    logins.kept("a directory", &["alice", "erin"], "Is a directory");
    fs::remove_dir(&path).unwrap();
    write_private(&path, &tokens(&["alice", "frank"]));
    logins.picked_up("good file after the directory", &["alice", "frank"], &["erin"]);
    // A symlink to nothing.
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(path.with_file_name("missing.json"), &path).unwrap();
    logins.kept("a dangling symlink", &["alice", "frank"], "has disappeared or cannot be read");
    fs::remove_file(&path).unwrap();
    write_private(&path, &tokens(&["alice", "gina"]));
    logins.picked_up("good file after the symlink", &["alice", "gina"], &["frank"]);

    // Deleted, then created again.
    fs::remove_file(&path).unwrap();
    logins.kept("deleted", &["alice", "gina"], "has disappeared");
    write_private(&path, &tokens(&["alice", "hugo"]));
    logins.picked_up("created again", &["alice", "hugo"], &["gina"]);
}

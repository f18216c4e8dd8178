//! The state journal damaged under a running FreeRADIUS: truncated in place, it
//! is written back from what the module holds (a used code stays used), with a
//! log line.

mod common;

use std::fs::OpenOptions;

use common::{now, settle_in_step, totp_at, Server, Setup};

#[test]
fn a_journal_truncated_in_place_never_makes_a_used_code_good_again() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&common::totp_tokens(&["alice"])));
    settle_in_step(8);
    let code = totp_at(now());
    assert!(server.auth("alice", &code).is_accept());

    // Truncated in place (not replaced, not deleted): the record of the used step is gone.
    let journal = server.state_path();
    OpenOptions::new().write(true).open(&journal).unwrap().set_len(0).unwrap();

    let again = server.auth("alice", &code);
    assert!(again.is_reject(), "a used code was accepted again: {again:?}");
    let log = server.debug_log();
    assert!(log.contains("shrank in place") && log.contains("written back"), "{}", common::tail(&log, 30));
    // Written back: the file holds the used step again.
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("\"k\":\"totp\""), "{text}");
}

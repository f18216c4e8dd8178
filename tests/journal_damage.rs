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

/// The journal cannot be written (a write fails as on a full disk): no failure can be
/// counted and no code recorded, so every answer is the unavailable store's, right code
/// or wrong, and the lockout is never silently off.
#[test]
fn a_journal_that_cannot_be_written_answers_unavailable_to_every_code() {
    let module = require_module!();
    // The server may write 2 MiB into a file; the journal is already 3 MiB long (blank
    // lines, which it skips), so that every append fails with EFBIG, while the debug log
    // (the server's stdout) stays far below the limit.
    let limit = 2 << 20;
    let journal = "\n".repeat(3 << 20);
    let mut setup = Setup::otp_mode(&common::totp_tokens(&["alice"]))
        .with("lockout {\n max_failures = 5\n duration = 600\n}")
        .file("db/mfa/state.jsonl", &journal);
    setup.file_size_limit = Some(limit);
    let server = Server::start(&module, &setup);
    settle_in_step(10);

    let unavailable = "Authentication is unavailable, try again later";
    for i in 0..20 {
        let reply = server.auth("alice", &format!("{:06}", (i * 7919) % 1_000_000));
        assert!(reply.is_reject(), "wrong code {i}: {reply:?}");
        assert_eq!(reply.message(), Some(unavailable), "wrong code {i}: {reply:?}");
    }
    let right = server.auth("alice", &totp_at(now()));
    assert!(!right.is_accept(), "let in without a record of the code: {right:?}");
    assert_eq!(right.message(), Some(unavailable), "the right code is told apart: {right:?}");
    let log = server.debug_log();
    assert!(log.contains("File too large"), "the log says why:\n{}", common::tail(&log, 30));
    // One line per request, naming the cause and that it could not be recorded (a
    // "rejected" line beside an error line would be two).
    let mut per_request = std::collections::BTreeMap::<&str, Vec<&str>>::new();
    for line in log.lines() {
        if let Some((number, text)) = line.strip_prefix('(').and_then(|l| l.split_once(") mfa: ")) {
            per_request.entry(number).or_default().push(text);
        }
    }
    assert_eq!(per_request.len(), 21, "{per_request:#?}");
    for lines in per_request.values() {
        assert_eq!(lines.len(), 1, "{lines:#?}");
    }
    let wrong = per_request
        .values()
        .filter(|l| l[0].starts_with("rejected: \"alice\" sent a wrong code, and the failure cannot be recorded"))
        .count();
    assert_eq!(wrong, 20, "{per_request:#?}");
}

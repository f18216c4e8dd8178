//! Mode otp-or-push (TrustBuilder/inWebo's RADIUS flow) through a real FreeRADIUS
//! with the shipped site and a fake push provider: a code typed alone is checked
//! alone, without the first factor; anything else is the password, checked by the
//! first factor, then a push.

mod common;

use std::time::Duration;

use common::fake_push::{FakePush, PushBehaviour};
use common::{now, settle_in_step, totp_at, totp_tokens, Server, Setup};

fn start(module: &std::path::Path, provider: &FakePush, detailed: bool) -> Server {
    let mut setup =
        Setup::challenge_mode("otp-or-push", &totp_tokens(&["alice"]), &[("alice", "pw-alice")]).with(&format!(
            "detailed_messages = {}\npush {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n}}",
            if detailed { "yes" } else { "no" },
            provider.url()
        ));
    setup.site = Some(std::fs::read_to_string(common::repo().join("freeradius-conf/sites-available/mfa")).unwrap());
    Server::start(module, &setup)
}

#[test]
fn a_code_alone_is_checked_alone_and_anything_else_is_the_password_then_a_push() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_millis(300)));
    let server = start(&module, &provider, false);

    settle_in_step(5);
    let code = totp_at(now());
    let alone = server.auth("alice", &code);
    assert!(alone.is_accept(), "{alone:?}");
    assert_eq!(provider.created(), 0, "a code sends no push");
    let replay = server.auth("alice", &code);
    assert!(replay.is_reject(), "{replay:?}");
    assert_eq!(replay.message(), Some("Wrong or already used code"));

    // The password: the first factor, then the push, approved.
    let push = server.auth("alice", "pw-alice");
    assert!(push.is_accept(), "{push:?}");
    assert_eq!(provider.created(), 1);
    let wrong_password = server.auth("alice", "not-her-password");
    assert!(wrong_password.is_reject(), "{wrong_password:?}");
    assert_eq!(provider.created(), 1, "a wrong password sends no push");

    // A code-shaped guess for someone without a token reads as a wrong code.
    let unknown = server.auth("nobody", "123456");
    assert!(unknown.is_reject(), "{unknown:?}");
    assert_eq!(unknown.message(), Some("Wrong or already used code"));
    let log = server.debug_log();
    assert!(!log.contains(&code), "no code in the log");
}

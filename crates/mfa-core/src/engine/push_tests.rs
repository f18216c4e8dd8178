//! Push and shared-journal cases found in review, kept as regression tests:
//! an approval is never reused by another login, a push that was sent is never
//! accepted because its status cannot be read, and module instances sharing a
//! journal add up failures and honour each other's locks.

use super::*;
use crate::channel::push::{PushError, PushProvider, PushRequest, PushStatus};
use crate::clock::FixedClock;
use crate::config::RawConfig;
use crate::factor::otp;
use crate::stats::{Cause, Tally};
use crate::testutil::TempDir;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::test_config::{raw_config, SEED, SEED_B32, T};

/// Two instances ("mfa", "mfa_vpn") of one configuration, sharing token file and journal.
fn two_instances(mode: &str, change: impl Fn(&mut RawConfig)) -> (TempDir, Engine, Engine) {
    let dir = TempDir::new("shared");
    dir.file(
        "tokens.json",
        &format!(
            r#"{{"users": {{"alice": {{"tokens": [{{"serial": "T1", "type": "totp", "secret": "{SEED_B32}"}}]}}}}}}"#
        ),
        0o640,
    );
    let clock = Arc::new(FixedClock::new(T));
    let mut r = raw_config(dir.path(), mode);
    change(&mut r);
    let a = Engine::new("mfa", Config::from_raw(&r).unwrap(), clock.clone()).unwrap();
    let b = Engine::new("mfa_vpn", Config::from_raw(&r).unwrap(), clock).unwrap();
    (dir, a, b)
}

fn auth(e: &Engine, code: &str) -> AuthenticateOutput {
    e.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(code.as_bytes()),
        ..AuthenticateInput::default()
    })
}

/// A code that is wrong in the whole window.
fn wrong() -> String {
    ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| (T / 30 - 1..=T / 30 + 1).all(|s| otp::hotp_code(SEED, s, 6, otp::Algorithm::Sha1) != *c))
        .unwrap()
        .to_string()
}

#[test]
fn a_lock_set_by_one_instance_holds_in_the_other() {
    let (_d, a, b) = two_instances("otp", |_| {});
    let w = wrong();
    for _ in 0..3 {
        auth(&a, &w);
    }
    let right = otp::hotp_code(SEED, T / 30, 6, otp::Algorithm::Sha1);
    assert_eq!(auth(&b, &right).outcome, Some(Outcome::Userlock));
}

#[test]
fn instances_add_up_failures_and_never_undo_a_lock() {
    let (_d, a, b) = two_instances("otp", |_| {});
    let w = wrong();
    // Alternating instances: the third failure, wherever it lands, locks.
    assert_eq!(auth(&a, &w).outcome, Some(Outcome::Reject));
    assert_eq!(auth(&b, &w).outcome, Some(Outcome::Reject));
    assert_eq!(auth(&a, &w).outcome, Some(Outcome::Userlock));
    for e in [&b, &a, &b] {
        let out = auth(e, &w);
        assert_eq!(out.outcome, Some(Outcome::Userlock));
        assert!(!out.log.iter().any(|l| l.text.contains("sent a wrong")), "a locked user's code is not checked");
    }
}

/// A provider with request_id idempotency that approves when told.
#[derive(Default)]
struct Provider {
    by_request: Mutex<HashMap<String, String>>,
    approved: AtomicBool,
    created: AtomicUsize,
}

struct Shared(Arc<Provider>);

impl PushProvider for Shared {
    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        let mut known = self.0.by_request.lock().unwrap();
        let status = if self.0.approved.load(Ordering::SeqCst) { PushStatus::Approved } else { PushStatus::Pending };
        if let Some(id) = known.get(req.request_id) {
            return Ok((id.clone(), status));
        }
        let id = format!("p{}", self.0.created.fetch_add(1, Ordering::SeqCst));
        known.insert(req.request_id.to_string(), id.clone());
        Ok((id, PushStatus::Pending))
    }
    fn status(&self, _id: &str) -> Result<PushStatus, PushError> {
        Ok(if self.0.approved.load(Ordering::SeqCst) { PushStatus::Approved } else { PushStatus::Pending })
    }
    fn cancel(&self, _id: &str) -> Result<(), PushError> {
        Ok(())
    }
}

fn push_config(r: &mut RawConfig) {
    r.push.url = Some("http://127.0.0.1:9".into());
    r.push.timeout = 1;
    r.push.poll_interval = 1;
    r.push.wait = 5;
    r.push.max_waiting = 8;
    r.push.skip_failing = 30;
}

fn push_login(e: &Engine) -> AuthenticateOutput {
    e.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        nas: "10.0.0.1||vpn".into(),
        client: "vpn".into(),
        nas_name: "vpn".into(),
        session: "198.51.100.7|0".into(),
        ..AuthenticateInput::default()
    })
}

#[test]
fn an_approved_push_is_never_reused_by_a_later_login() {
    let (_d, mut a, _b) = two_instances("push", push_config);
    let provider = Arc::new(Provider::default());
    a.set_push_provider(Box::new(Shared(provider.clone())));
    provider.approved.store(true, Ordering::SeqCst);
    assert_eq!(push_login(&a).outcome, Some(Outcome::Ok));
    assert_eq!(provider.created.load(Ordering::SeqCst), 1);
    // The same login again, in the same window, after the first ended: a push of its own.
    push_login(&a);
    assert_eq!(provider.created.load(Ordering::SeqCst), 2);
}

/// A push that reaches the device, whose status can then never be read.
struct Unreadable;

impl PushProvider for Unreadable {
    fn open(&self, _req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        Ok(("x".into(), PushStatus::Pending))
    }
    fn status(&self, _id: &str) -> Result<PushStatus, PushError> {
        Err(PushError::Status(502))
    }
    fn cancel(&self, _id: &str) -> Result<(), PushError> {
        Ok(())
    }
}

/// A provider whose every call fails with the error its function makes.
struct Failing(fn() -> PushError);

impl PushProvider for Failing {
    fn open(&self, _req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        Err((self.0)())
    }
    fn status(&self, _id: &str) -> Result<PushStatus, PushError> {
        Err((self.0)())
    }
    fn cancel(&self, _id: &str) -> Result<(), PushError> {
        Ok(())
    }
}

/// A provider that refuses the push (a 4xx).
fn refusing() -> Box<Failing> {
    Box::new(Failing(|| PushError::Status(404)))
}

/// A provider that cannot be reached at all.
fn down() -> Box<Failing> {
    Box::new(Failing(|| PushError::Unreachable("connection refused".into())))
}

/// The push settings with `failmode = safe`.
fn failmode_safe(r: &mut RawConfig) {
    push_config(r);
    r.push.failmode = Some("safe".into());
}

#[test]
fn failmode_safe_never_accepts_a_sent_push_or_a_refused_one() {
    let (_d, mut a, mut b) = two_instances("push", failmode_safe);
    a.set_push_provider(Box::new(Unreadable));
    let out = push_login(&a);
    assert_eq!(out.outcome, Some(Outcome::Reject), "{out:?}");
    b.set_push_provider(refusing());
    let out = push_login(&b);
    assert_eq!(out.outcome, Some(Outcome::Reject), "{out:?}");
}

/// A push approved while the store cannot clear the user's failures is refused as
/// unavailable (the first store operation that fails ends the login), not accepted.
#[test]
fn an_approval_the_store_cannot_record_is_refused_as_unavailable() {
    let (_d, mut a, _b) = two_instances("push", push_config);
    let store = super::joining::farm::testing::Logins::default();
    store.2.store(true, Ordering::SeqCst);
    a.store = Box::new(store.clone());
    let provider = Arc::new(Provider::default());
    a.set_push_provider(Box::new(Shared(provider.clone())));
    provider.approved.store(true, Ordering::SeqCst);
    let out = push_login(&a);
    assert_eq!(out.outcome, Some(Outcome::Fail), "{out:?}");
    assert_eq!(out.reply_messages, vec![a.config().messages.internal.clone()]);
    assert_eq!(out.tally(), Tally::Reject { cause: Cause::Unavailable, locks: false });
    assert!(out.log.iter().any(|l| l.text.contains("cannot reset the failure count")), "{:?}", out.log);
    assert_eq!(provider.created.load(Ordering::SeqCst), 1, "the push was sent and approved");

    store.2.store(false, Ordering::SeqCst);
    assert_eq!(push_login(&a).outcome, Some(Outcome::Ok), "with the store back, an approval lets in");
}

/// An accept on the password alone counts as an accept, a fail-safe accept and a
/// failed push; with `secure` the same failure is a push_failed refusal.
#[test]
fn a_failmode_safe_accept_is_counted_as_one() {
    let (_d, mut a, _b) = two_instances("push", failmode_safe);
    a.set_push_provider(down());
    let out = push_login(&a);
    assert_eq!((out.outcome, out.tally()), (Some(Outcome::Ok), Tally::FailsafeAccept), "{out:?}");
    let (_d, mut secure, _b) = two_instances("push", push_config);
    secure.set_push_provider(down());
    let out = push_login(&secure);
    assert_eq!(out.tally(), Tally::Reject { cause: Cause::PushFailed, locks: false }, "{out:?}");
}

/// In the challenge modes `failmode = safe` lets in on the password alone only a user
/// whose one method is the push: alice has an app token, so asking for a push while the
/// provider is down (`password,push` in `auto`) is refused, and she types her code.
#[test]
fn failmode_safe_spares_no_user_who_has_another_method() {
    let (_d, mut a, _b) = two_instances("auto", failmode_safe);
    a.set_push_provider(down());
    let out = asks_for_a_push(&a, b"alice");
    assert_eq!(out.outcome, Some(Outcome::Reject), "{out:?}");
    assert_eq!(out.tally(), Tally::Reject { cause: Cause::PushFailed, locks: false });
    assert!(out.log.iter().any(|l| l.text.contains("has another")), "{:?}", out.log);
    // In mode push the push is every password login's one way: safe lets it in.
    let (_d, mut p, _b) = two_instances("push", failmode_safe);
    p.set_push_provider(down());
    assert_eq!(push_login(&p).tally(), Tally::FailsafeAccept);

    // A user listed without tokens or addresses has the push alone: safe lets bob in.
    let dir = TempDir::new("push-only");
    dir.file("tokens.json", r#"{"users": {"bob": {}}}"#, 0o640);
    let mut r = raw_config(dir.path(), "auto");
    failmode_safe(&mut r);
    let mut bob = Engine::new("mfa", Config::from_raw(&r).unwrap(), Arc::new(FixedClock::new(T))).unwrap();
    bob.set_push_provider(down());
    let out = asks_for_a_push(&bob, b"bob");
    assert_eq!((out.outcome, out.tally()), (Some(Outcome::Ok), Tally::FailsafeAccept), "{out:?}");
}

/// `password,push` in mode `auto`, as authorize hands it over.
fn asks_for_a_push(e: &Engine, user: &'static [u8]) -> AuthenticateOutput {
    e.authenticate(AuthenticateInput {
        user_name: Some(user),
        password: Some(b"pw"),
        stashed_code: Some("push".into()),
        nas: "10.0.0.1||vpn".into(),
        ..AuthenticateInput::default()
    })
}

#[test]
fn pushes_past_the_users_limit_are_refused_until_the_window_ends() {
    let limited = |r: &mut RawConfig| {
        push_config(r);
        r.push.approval = Some("challenge".into());
        r.limits.pushes = 2;
        r.limits.window = 600;
    };
    let (_d, mut a, _b) = two_instances("push", limited);
    let provider = Arc::new(Provider::default());
    a.set_push_provider(Box::new(Shared(provider.clone())));
    for _ in 0..2 {
        assert_eq!(push_login(&a).outcome, Some(Outcome::Challenge), "a challenge: approve, then OK");
    }
    let refused = push_login(&a);
    assert_eq!(refused.outcome, Some(Outcome::Reject), "{refused:?}");
    assert_eq!(refused.reply_messages, vec!["Too many approval requests: try again in 600 seconds".to_string()]);
    assert!(refused.log.iter().any(|l| l.text.contains("limits.pushes")), "{:?}", refused.log);
    assert_eq!(provider.created.load(Ordering::SeqCst), 2, "no third push reached the provider");
}

/// Answers every push's status with the same word.
struct Answering(PushStatus);

impl PushProvider for Answering {
    fn open(&self, _req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        Ok(("p".into(), PushStatus::Pending))
    }
    fn status(&self, _id: &str) -> Result<PushStatus, PushError> {
        Ok(self.0)
    }
    fn cancel(&self, _id: &str) -> Result<(), PushError> {
        Ok(())
    }
}

/// In mode push and in otp-or-push alike (the push follows the password there
/// too), the denial that locks answers with the lockout's words, as after any
/// password (not a code's "wrong code").
#[test]
fn denied_pushes_count_toward_the_lockout() {
    let strict = |r: &mut RawConfig| {
        push_config(r);
        r.lockout.max_failures = 2;
    };
    for mode in ["push", "otp-or-push"] {
        let (_d, mut a, _b) = two_instances(mode, strict);
        a.set_push_provider(Box::new(Answering(PushStatus::Denied)));
        let first = push_login(&a);
        assert_eq!(first.outcome, Some(Outcome::Reject), "{mode}: {first:?}");
        assert_eq!(first.reply_messages, vec!["The login was denied on your device".to_string()], "{mode}");
        let second = push_login(&a);
        assert_eq!(second.outcome, Some(Outcome::Userlock), "{mode}: {second:?}");
        assert!(second.reply_messages[0].starts_with("Too many failed attempts"), "{mode}: {second:?}");
    }
}

#[test]
fn unanswered_pushes_count_toward_the_lockout() {
    let strict = |r: &mut RawConfig| {
        push_config(r);
        r.lockout.max_failures = 2;
    };
    let (_d, mut a, _b) = two_instances("push", strict);
    a.set_push_provider(Box::new(Answering(PushStatus::Expired)));
    let first = push_login(&a);
    assert_eq!(first.reply_messages, vec!["No answer from your device in time".to_string()], "{first:?}");
    let second = push_login(&a);
    assert_eq!(second.outcome, Some(Outcome::Userlock), "{second:?}");
    // Locked: the next login sends no push at all.
    let third = push_login(&a);
    assert_eq!(third.outcome, Some(Outcome::Userlock), "{third:?}");
    assert!(third.log.iter().any(|l| l.text.contains("is locked for")), "{:?}", third.log);
}

/// With `approval = challenge` a push counts as a failure as it is sent: the one
/// that reaches `max_failures` is counted as a lockout, though the challenge goes out.
#[test]
fn a_push_challenge_whose_failure_locks_counts_a_lockout() {
    let strict = |r: &mut RawConfig| {
        push_config(r);
        r.push.approval = Some("challenge".into());
        r.lockout.max_failures = 2;
    };
    let (_d, mut a, _b) = two_instances("push", strict);
    a.set_push_provider(Box::new(Answering(PushStatus::Pending)));
    let first = push_login(&a);
    assert_eq!((first.outcome, first.tally()), (Some(Outcome::Challenge), Tally::Challenge), "{first:?}");
    let second = push_login(&a);
    assert_eq!((second.outcome, second.tally()), (Some(Outcome::Challenge), Tally::ChallengeLocks), "{second:?}");
    let counters = crate::stats::Counters::default();
    counters.count(second.tally());
    let s = counters.snapshot();
    assert_eq!((s.challenges, s.lockouts), (1, 1));
    // Locked already: refused, and no second lockout.
    let third = push_login(&a);
    assert_eq!(third.tally(), Tally::Reject { cause: Cause::LockedOut, locks: false }, "{third:?}");
}

//! What each answer counts as (the counters): every refusal under exactly one cause.

use super::test_config::{raw_config, SEED, SEED_B32, T};
use super::*;
use crate::clock::FixedClock;
use crate::config::RawConfig;
use crate::factor::otp;
use crate::stats::{Cause, Counters, Tally};
use crate::testutil::TempDir;

fn refuses(outcome: Option<Outcome>) -> bool {
    matches!(outcome, None | Some(Outcome::Reject | Outcome::Userlock | Outcome::Invalid | Outcome::Fail))
}

#[test]
fn every_refusal_is_counted_under_one_cause_and_nothing_else_is() {
    let tallies = [
        Tally::Nothing,
        Tally::Accept,
        Tally::PushApproved,
        Tally::FailsafeAccept,
        Tally::Challenge,
        Tally::ChallengeLocks,
        Tally::Reject { cause: Cause::WrongCode, locks: false },
        Tally::JoinedReject { cause: Cause::PushDenied },
    ];
    for outcome in Outcome::ALL.map(Some).into_iter().chain([None]) {
        for tally in tallies {
            let counted = tally_of(outcome, tally);
            assert_eq!(
                refuses(outcome),
                matches!(counted, Tally::Reject { .. } | Tally::JoinedReject { .. }),
                "{outcome:?} with {tally:?} counts as {counted:?}"
            );
            // A refusal counts once: its rejects_total and nothing of an accept or challenge.
            let c = Counters::default();
            c.count(counted);
            let s = c.snapshot();
            let rejects: u64 = s.rejects.iter().sum();
            assert_eq!(rejects, u64::from(refuses(outcome)), "{outcome:?} {tally:?}");
            assert_eq!(s.accepts, u64::from(outcome == Some(Outcome::Ok)), "{outcome:?} {tally:?}");
            assert_eq!(s.challenges, u64::from(outcome == Some(Outcome::Challenge)), "{outcome:?} {tally:?}");
        }
    }
    // The cause a refusal carries is kept.
    let wrong = Tally::Reject { cause: Cause::WrongCode, locks: false };
    assert_eq!(tally_of(Some(Outcome::Reject), wrong), wrong);
}

/// Every Reject the engine builds names its cause: `Decision::refuse` is for the
/// other return codes, whose cause follows from the code.
#[test]
fn no_reject_is_built_without_a_cause() {
    fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let name = path.display().to_string();
                if name.contains("tests") {
                    continue;
                }
                for (n, line) in text.lines().enumerate() {
                    if line.contains("refuse(Outcome::Reject") || line.contains("Outcome::Reject }") {
                        found.push(format!("{name}:{}: {line}", n + 1));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine"), &mut found);
    assert!(found.is_empty(), "Rejects without a cause (use Decision::reject):\n{}", found.join("\n"));
}

fn code(time: u64) -> String {
    otp::hotp_code(SEED, time / 30, 6, otp::Algorithm::Sha1)
}

#[test]
fn a_known_sequence_counts_as_it_should() {
    let dir = TempDir::new("engine-stats");
    let tokens = format!(
        r#"{{"users": {{"alice": {{"tokens": [{{"serial": "T1", "type": "totp", "secret": "{SEED_B32}"}}]}},
            "nobody": {{"tokens": []}}}}}}"#
    );
    dir.file("tokens.json", &tokens, 0o640);
    let raw = RawConfig { detailed_messages: true, ..raw_config(dir.path(), "otp") };
    let clock = Arc::new(FixedClock::new(T));
    let engine = Engine::new("mfa", Config::from_raw(&raw).unwrap(), clock.clone()).unwrap();
    let auth = |user: &str, code: &str| {
        engine
            .authenticate(AuthenticateInput {
                user_name: Some(user.as_bytes()),
                password: Some(code.as_bytes()),
                ..AuthenticateInput::default()
            })
            .tally()
    };
    let reject = |cause, locks| Tally::Reject { cause, locks };
    assert_eq!(auth("alice", &code(T)), Tally::Accept);
    assert_eq!(auth("alice", &code(T)), reject(Cause::Replayed, false));
    assert_eq!(auth("alice", "12"), reject(Cause::Malformed, false));
    assert_eq!(auth("alice", "000000"), reject(Cause::LockedOut, true), "the third failure locks");
    assert_eq!(auth("alice", &code(T + 30)), reject(Cause::LockedOut, false), "locked already");
    assert_eq!(auth("nobody", "123456"), reject(Cause::NoToken, false));
    assert_eq!(auth("", "123456"), reject(Cause::Malformed, false));
    clock.advance(600);
    assert_eq!(auth("alice", "000000"), reject(Cause::WrongCode, false));
}

/// A re-send that joined a login counts its own accept or refusal, never a second
/// push ended nor a second lockout: the request that decided counted those.
#[test]
fn a_joined_answer_counts_no_second_push_or_lockout() {
    let decided = [
        Decision::accept_push(),
        Decision::accept_failsafe(),
        Decision::reject(Cause::PushDenied, String::new()),
        Decision::reject(Cause::PushTimeout, String::new()),
        Decision::reject(Cause::PushFailed, String::new()),
        Decision::locks(String::new()),
    ];
    for decision in decided {
        let (first, joined) = (Counters::default(), Counters::default());
        first.count(tally_of(Some(decision.outcome), decision.tally));
        let again = decision.clone().joined();
        joined.count(tally_of(Some(again.outcome), again.tally));
        // Joined twice (a re-send of a re-send, or another server's answer joined here): the same.
        assert_eq!(again.clone().joined().tally, again.tally, "{:?}", decision.tally);
        let (first, joined) = (first.snapshot(), joined.snapshot());
        assert_eq!(joined.pushes, [0; 4], "{:?}", decision.tally);
        assert_eq!(joined.lockouts, 0, "{:?}", decision.tally);
        assert_eq!((joined.accepts, joined.rejects), (first.accepts, first.rejects), "{:?}", decision.tally);
    }
}

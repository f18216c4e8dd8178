//! Several providers behind one: the order, the skipping, the ids.

use std::sync::Arc;
use std::time::Duration;

use super::fake_push::{FakePush, PushBehaviour};
use super::test_support::*;
use super::*;

fn failover(urls: &[&str], skip_for: Duration) -> Failover {
    let providers: Vec<Box<dyn PushProvider>> =
        urls.iter().map(|u| Box::new(provider(u, 2000)) as Box<dyn PushProvider>).collect();
    Failover::new(providers, skip_for)
}

#[test]
fn failover_primary_not_listening_uses_the_secondary() {
    let secondary = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let f = failover(&[&dead_url(), &secondary.url()], LONG);
    let id = f.create(&request("r1")).unwrap();
    assert_eq!(id, "1:push-1");
    assert_eq!(f.status(&id), Ok(PushStatus::Approved));
    f.cancel(&id).unwrap();
    assert_eq!(secondary.created(), 1);
    assert_eq!(secondary.cancelled(), 1);
}

#[test]
fn failover_open_on_finds_a_push_where_it_was_made() {
    let primary = FakePush::start(PushBehaviour::Error500);
    let secondary = FakePush::start(PushBehaviour::NeverAnswer);
    let f = failover(&[&primary.url(), &secondary.url()], Duration::ZERO);
    let (id, _) = f.open(&request("r1")).unwrap();
    assert_eq!((id.as_str(), provider_of(&id)), ("1:push-1", 1));
    // The primary works again (and is no longer skipped): open would make a
    // second push there; open_on asks the secondary alone.
    primary.set_behaviour(PushBehaviour::NeverAnswer);
    let calls = primary.calls();
    assert_eq!(f.open_on(1, &request("r1")).unwrap(), ("1:push-1".to_owned(), PushStatus::Pending));
    assert_eq!((primary.calls(), secondary.created()), (calls, 1));
    // An index it does not have: the usual order.
    assert_eq!(f.open_on(7, &request("r2")).unwrap().0, "0:push-1");
    assert_eq!(provider_of("push-9"), 0);
}

#[test]
fn failover_skips_a_failing_primary_for_skip_for() {
    let primary = FakePush::start(PushBehaviour::Error500);
    let secondary = FakePush::start(PushBehaviour::NeverAnswer);
    let f = failover(&[&primary.url(), &secondary.url()], LONG);
    assert_eq!(f.create(&request("r1")).unwrap(), "1:push-1");
    assert_eq!(primary.calls(), 1);
    // Within skip_for the primary is not asked, even once it works again.
    primary.set_behaviour(PushBehaviour::NeverAnswer);
    for n in 2..=4 {
        assert_eq!(f.create(&request(&format!("r{n}"))).unwrap(), format!("1:push-{n}"));
    }
    assert_eq!(primary.calls(), 1);
    assert_eq!(secondary.created(), 4);
}

#[test]
fn failover_tries_the_primary_again_after_skip_for() {
    let primary = FakePush::start(PushBehaviour::Error500);
    let secondary = FakePush::start(PushBehaviour::NeverAnswer);
    let skip_for = Duration::from_millis(200);
    let f = failover(&[&primary.url(), &secondary.url()], skip_for);
    assert_eq!(f.create(&request("r1")).unwrap(), "1:push-1");
    std::thread::sleep(skip_for + Duration::from_millis(50));
    // Tried again, still failing: skipped again.
    assert_eq!(f.create(&request("r2")).unwrap(), "1:push-2");
    assert_eq!(primary.calls(), 2);
    std::thread::sleep(skip_for + Duration::from_millis(50));
    primary.set_behaviour(PushBehaviour::NeverAnswer);
    assert_eq!(f.create(&request("r3")).unwrap(), "0:push-1");
    assert_eq!(f.create(&request("r4")).unwrap(), "0:push-2");
    assert_eq!(primary.calls(), 4);
    assert_eq!(secondary.created(), 2);
}

#[test]
fn failover_ids_route_to_the_provider_that_made_them() {
    let primary = FakePush::start(PushBehaviour::Error500);
    let secondary = FakePush::start(PushBehaviour::NeverAnswer);
    let f = failover(&[&primary.url(), &secondary.url()], Duration::from_millis(100));
    let on_secondary = f.create(&request("r1")).unwrap();
    assert_eq!(on_secondary, "1:push-1");
    std::thread::sleep(Duration::from_millis(150));
    primary.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    let on_primary = f.create(&request("r2")).unwrap();
    // Both providers call their push "push-1": only the prefix tells them apart.
    assert_eq!(on_primary, "0:push-1");

    let (p_calls, s_calls) = (primary.calls(), secondary.calls());
    assert_eq!(f.status(&on_secondary), Ok(PushStatus::Pending));
    assert_eq!((primary.calls(), secondary.calls()), (p_calls, s_calls + 1));
    assert_eq!(f.status(&on_primary), Ok(PushStatus::Approved));
    assert_eq!((primary.calls(), secondary.calls()), (p_calls + 1, s_calls + 1));
    f.cancel(&on_secondary).unwrap();
    assert_eq!((primary.cancelled(), secondary.cancelled()), (0, 1));

    // Ids it did not make reach no provider.
    for id in ["push-1", "2:push-1", "x:push-1", "01:push-1", "+1:push-1", ":push-1", ""] {
        assert!(matches!(f.status(id), Err(PushError::BadAnswer(_))), "{id}");
        assert!(matches!(f.cancel(id), Err(PushError::BadAnswer(_))), "{id}");
    }
    assert_eq!((primary.calls(), secondary.calls()), (p_calls + 1, s_calls + 2));
}

#[test]
fn failover_status_goes_to_a_skipped_provider_and_failures_count() {
    let primary = FakePush::start(PushBehaviour::NeverAnswer);
    let secondary = FakePush::start(PushBehaviour::NeverAnswer);
    let f = failover(&[&primary.url(), &secondary.url()], LONG);
    let id = f.create(&request("r1")).unwrap();
    assert_eq!(id, "0:push-1");
    primary.set_behaviour(PushBehaviour::Error500);
    assert_eq!(f.status(&id), Err(PushError::Status(500)));
    // The failed status call makes new pushes go to the secondary...
    assert_eq!(f.create(&request("r2")).unwrap(), "1:push-1");
    assert_eq!(primary.calls(), 2);
    // ...while the push on the primary is still asked there.
    primary.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    assert_eq!(f.status(&id), Ok(PushStatus::Approved));
    // And an answer ends the primary's skip.
    assert_eq!(f.create(&request("r3")).unwrap(), "0:push-2");
}

#[test]
fn failover_client_errors_do_not_fail_over() {
    let primary = FakePush::start(PushBehaviour::NeverAnswer);
    let secondary = FakePush::start(PushBehaviour::NeverAnswer);
    let f = failover(&[&primary.url(), &secondary.url()], LONG);
    assert_eq!(f.status("0:unknown"), Err(PushError::Status(404)));
    assert_eq!(f.create(&request("r1")).unwrap(), "0:push-1");
    assert_eq!(secondary.calls(), 0);
}

#[test]
fn failover_both_down() {
    let primary = FakePush::start(PushBehaviour::Error500);
    let secondary = FakePush::start(PushBehaviour::Close);
    let f = failover(&[&primary.url(), &secondary.url()], LONG);
    assert_eq!(f.create(&request("r1")), Err(PushError::AllDown));
    assert_eq!((primary.calls(), secondary.calls()), (1, 1));
    // Both skipped: the one whose skip ends first is tried all the same.
    assert_eq!(f.create(&request("r2")), Err(PushError::Status(500)));
    assert_eq!((primary.calls(), secondary.calls()), (2, 1));
    let e = f.create(&request("r3")).unwrap_err();
    assert!(matches!(e, PushError::Unreachable(_)), "{e:?}");
    assert_eq!((primary.calls(), secondary.calls()), (2, 2));
    // The one tried works again: used at once.
    primary.set_behaviour(PushBehaviour::NeverAnswer);
    assert_eq!(f.create(&request("r4")).unwrap(), "0:push-1");
    assert_eq!((primary.calls(), secondary.calls()), (3, 2));
}

#[test]
fn failover_both_not_listening() {
    let f = failover(&[&dead_url(), &dead_url()], LONG);
    assert_eq!(f.create(&request("r1")), Err(PushError::AllDown));
    assert!(matches!(f.create(&request("r1")), Err(PushError::Unreachable(_))));
}

#[test]
fn failover_of_one_or_none() {
    let fake = FakePush::start(PushBehaviour::Error500);
    let f = failover(&[&fake.url()], LONG);
    assert_eq!(f.create(&request("r1")), Err(PushError::Status(500)));
    assert_eq!(f.create(&request("r1")), Err(PushError::Status(500)));
    assert_eq!(fake.calls(), 2, "a lone provider is always tried");
    let none = Failover::new(Vec::new(), LONG);
    assert_eq!(none.create(&request("r1")), Err(PushError::AllDown));
    assert!(matches!(none.status("0:x"), Err(PushError::BadAnswer(_))));
}

#[test]
fn failover_is_shareable_between_threads() {
    let primary = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let secondary = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let f: Arc<dyn PushProvider> = Arc::new(failover(&[&primary.url(), &secondary.url()], LONG));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                let id = f.create(&request(&format!("r{i}"))).unwrap();
                f.status(&id).unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), PushStatus::Approved);
    }
    assert_eq!((primary.created(), secondary.created()), (4, 0));
}

//! The time one request's module calls (authorize, authenticate, post-auth) may spend
//! waiting on the shared store, whatever the number of operations they make.
//! Each operation already has a deadline of its own; this bounds their sum, so
//! that a Redis that answers every exchange just before `timeout_ms` cannot
//! hold a FreeRADIUS thread for one wait per operation, nor per call. Time a
//! call spends elsewhere (a push provider, privacyIDEA, Duo) is not counted.
//!
//! Per thread: FreeRADIUS runs one module call on a thread at a time, and the
//! calls of one request one after another on the same thread. A call names its
//! request (FreeRADIUS's request number); the next call of the same request on
//! the thread goes on with what the last one left. A call of another request, or
//! one that names none, starts a budget of its own.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// What is left of the running call's budget; None outside a call.
    static LEFT: Cell<Option<Duration>> = const { Cell::new(None) };
    /// The request of the thread's last call that named one, and what it left.
    static LAST: Cell<Option<(u64, Duration)>> = const { Cell::new(None) };
}

/// A call's budget, from `enter` until dropped (also when a panic unwinds).
#[must_use = "the budget ends when this is dropped"]
pub struct CallBudget {
    entered: bool,
    request: Option<u64>,
}

impl CallBudget {
    /// Starts a call's budget; None (no shared store), or within a call that
    /// already has one, changes nothing.
    pub fn enter(budget: Option<Duration>) -> CallBudget {
        CallBudget::for_request(budget, None)
    }

    /// Starts a call of `request`: with what the request's last call on this
    /// thread left of `budget`, else `budget` whole.
    pub fn for_request(budget: Option<Duration>, request: Option<u64>) -> CallBudget {
        let Some(budget) = budget.filter(|_| LEFT.with(|left| left.get().is_none())) else {
            return CallBudget { entered: false, request: None };
        };
        let start = match (request, LAST.with(Cell::get)) {
            (Some(request), Some((last, left))) if request == last => left.min(budget),
            _ => budget,
        };
        LEFT.with(|left| left.set(Some(start)));
        CallBudget { entered: true, request }
    }
}

impl Drop for CallBudget {
    fn drop(&mut self) {
        if self.entered {
            let left = LEFT.with(Cell::take);
            LAST.with(|last| last.set(self.request.zip(left)));
        }
    }
}

/// What is left of the running call's budget (None: no call is running, as in mfa-admin).
pub fn left() -> Option<Duration> {
    LEFT.with(Cell::get)
}

/// Counts `waited` against the running call's budget, if any.
pub fn spend(waited: Duration) {
    LEFT.with(|left| {
        if let Some(l) = left.get() {
            left.set(Some(l.saturating_sub(waited)));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_runs_from_enter_to_drop_and_is_spent() {
        assert_eq!(left(), None);
        {
            let _call = CallBudget::enter(Some(Duration::from_millis(1500)));
            spend(Duration::from_millis(400));
            assert_eq!(left(), Some(Duration::from_millis(1100)));
            {
                let _nested = CallBudget::enter(Some(Duration::from_secs(9)));
                assert_eq!(left(), Some(Duration::from_millis(1100)), "a nested call keeps the outer budget");
            }
            assert_eq!(left(), Some(Duration::from_millis(1100)));
            spend(Duration::from_secs(5));
            assert_eq!(left(), Some(Duration::ZERO));
        }
        assert_eq!(left(), None);
        spend(Duration::from_secs(1));
        assert_eq!(left(), None, "no call, nothing to spend");
        let _none = CallBudget::enter(None);
        assert_eq!(left(), None);
    }

    #[test]
    fn the_calls_of_one_request_share_its_budget() {
        let whole = Some(Duration::from_millis(1500));
        {
            let _authorize = CallBudget::for_request(whole, Some(7));
            spend(Duration::from_millis(1000));
        }
        {
            let _authenticate = CallBudget::for_request(whole, Some(7));
            assert_eq!(left(), Some(Duration::from_millis(500)), "authenticate goes on from authorize");
            spend(Duration::from_millis(200));
        }
        {
            let _other = CallBudget::for_request(whole, Some(8));
            assert_eq!(left(), whole, "another request starts whole");
        }
        {
            let _unnamed = CallBudget::enter(whole);
            assert_eq!(left(), whole, "a call that names no request starts whole");
        }
        let _back = CallBudget::for_request(whole, Some(7));
        assert_eq!(left(), whole, "only the thread's last request goes on");
    }

    #[test]
    fn a_panic_ends_the_budget() {
        let caught = std::panic::catch_unwind(|| {
            let _call = CallBudget::enter(Some(Duration::from_secs(1)));
            panic!("in the call");
        });
        assert!(caught.is_err());
        assert_eq!(left(), None);
    }
}

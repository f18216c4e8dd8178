//! The time one module call (authorize, authenticate, post-auth) may spend
//! waiting on the shared store, whatever the number of operations it makes.
//! Each operation already has a deadline of its own; this bounds their sum, so
//! that a Redis that answers every exchange just before `timeout_ms` cannot
//! hold a FreeRADIUS thread for one wait per operation. Time the call spends
//! elsewhere (a push provider, privacyIDEA, Duo) is not counted.
//!
//! Per thread: FreeRADIUS runs one module call on a thread at a time.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// What is left of the running call's budget; None outside a call.
    static LEFT: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// A call's budget, from `enter` until dropped (also when a panic unwinds).
#[must_use = "the budget ends when this is dropped"]
pub struct CallBudget {
    entered: bool,
}

impl CallBudget {
    /// Starts a call's budget; None (no shared store), or within a call that
    /// already has one, changes nothing.
    pub fn enter(budget: Option<Duration>) -> CallBudget {
        let entered = budget.is_some() && LEFT.with(|left| left.get().is_none());
        if entered {
            LEFT.with(|left| left.set(budget));
        }
        CallBudget { entered }
    }
}

impl Drop for CallBudget {
    fn drop(&mut self) {
        if self.entered {
            LEFT.with(|left| left.set(None));
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
    fn a_panic_ends_the_budget() {
        let caught = std::panic::catch_unwind(|| {
            let _call = CallBudget::enter(Some(Duration::from_secs(1)));
            panic!("in the call");
        });
        assert!(caught.is_err());
        assert_eq!(left(), None);
    }
}

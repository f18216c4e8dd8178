//! Push fatigue and text-message bombing: whoever holds a user's password may
//! start only `limits.pushes` pushes and `limits.codes_sent` sent codes for
//! that user per `limits.window`, counted in the state store (so across a farm
//! with the shared store), and a push the user denies or lets time out counts
//! toward the lockout like a wrong code.

use super::{Decision, Engine, Outcome, Trail};
use crate::stats::Cause;

/// What a request would start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Request {
    Push,
    SentCode,
}

impl Engine {
    /// Before anything reaches the user's device (a push, a code sent): the
    /// refusal when the user is locked (here or, with the shared store, by any
    /// server) or past the limit.
    pub(super) fn refuse_to_reach(&self, request: Request, user: &str, trail: &mut Trail) -> Option<Decision> {
        self.refuse_if_locked(user, trail).or_else(|| self.refuse_if_too_many(request, user, trail))
    }

    /// Counts the request; the refusal when it goes past the user's limit (or
    /// when it cannot be counted: a limit the store cannot keep is no limit).
    fn refuse_if_too_many(&self, request: Request, user: &str, trail: &mut Trail) -> Option<Decision> {
        let limits = &self.cfg.limits;
        let (kind, max) = match request {
            Request::Push => ("push", limits.pushes),
            Request::SentCode => ("code", limits.codes_sent),
        };
        if max == 0 {
            return None;
        }
        let now = self.clock.now();
        match self.store().count_request(kind, user, now, u64::from(limits.window)) {
            Ok((count, _)) if count <= max => None,
            Ok((_, left)) => {
                let what =
                    if request == Request::Push { "pushes (limits.pushes)" } else { "sent codes (limits.codes_sent)" };
                trail.warn(format!("rejected: \"{user}\" is past {max} {what} in {} s", limits.window));
                let message = self.cfg.messages.too_many_requests.replace("{seconds}", &left.to_string());
                Some(Decision::reject(Cause::RateLimited, message))
            }
            Err(e) => {
                trail.error(format!("cannot count the request in the {}: {e}", self.store().describe()));
                Some(Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()))
            }
        }
    }

    /// A push denied or left unanswered (`why`, for the log): a failure toward the
    /// lockout; the refusal to send (`message`, or the lockout's when this one locks).
    pub(super) fn push_failed(
        &self,
        user: &str,
        why: &str,
        (cause, message): (Cause, &str),
        trail: &mut Trail,
    ) -> Decision {
        match self.record_failure(user, self.clock.now(), Some(why), trail) {
            // A push goes only to whoever gave the password (otp-or-push too): the
            // lockout's own words, as after any password.
            Ok(Some(seconds)) => Decision::locks(self.lockout_words(seconds)),
            Ok(None) => Decision::reject(cause, message.to_string()),
            Err(()) => Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()),
        }
    }
}

//! The outgoing calls of the engines (the SMS and e-mail gateways, the push
//! provider, privacyIDEA, Duo), timed and their failures counted, when
//! `stats { file }` turns the counters on: one wrapper, [`Metered`], around
//! each, so that the callers do not change. (The Redis store times its own
//! operations.)

use std::time::Instant;

use crate::backend::duo::client::{Answer, CallError as DuoError, DuoApi};
use crate::backend::privacyidea::answer::{CheckAnswer, PollStatus};
use crate::backend::privacyidea::client::{CallError as PiError, Called, Validate};
use crate::channel::gateway::{SendError, Sender};
use crate::channel::push::{is_failure, PushError, PushProvider, PushRequest, PushStatus};
use crate::stats::{Call, Counters};

/// `inner`, each of its calls timed as one `call` in `counters`.
pub(super) struct Metered<I: ?Sized> {
    inner: Box<I>,
    call: Call,
    counters: &'static Counters,
}

impl<I: ?Sized> Metered<I> {
    /// `inner` wrapped; `call`'s histogram is written from now on (at zero until a call).
    pub(super) fn wrap(inner: Box<I>, call: Call, counters: &'static Counters) -> Metered<I> {
        counters.uses(call);
        Metered { inner, call, counters }
    }

    /// Runs `run`, timed; `failed` says whether its result counts as a failure.
    fn timed<T>(&self, failed: impl FnOnce(&T) -> bool, run: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = run();
        self.counters.observe(self.call, started.elapsed(), failed(&result));
        result
    }
}

impl Sender for Metered<dyn Sender> {
    fn send(&self, user: &str, destination: &str, message: &str) -> Result<(), SendError> {
        self.timed(Result::is_err, || self.inner.send(user, destination, message))
    }

    fn send_rendered(
        &self,
        user: &str,
        destination: &str,
        message: &str,
        values: &[(&str, &str)],
    ) -> Result<(), SendError> {
        self.timed(Result::is_err, || self.inner.send_rendered(user, destination, message, values))
    }
}

/// A refusal (4xx) is an answer; a provider that fails or is unreachable is a failure.
fn push_failed<T>(result: &Result<T, PushError>) -> bool {
    result.as_ref().err().is_some_and(is_failure)
}

impl PushProvider for Metered<dyn PushProvider> {
    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        self.timed(push_failed, || self.inner.open(req))
    }
    fn open_on(&self, index: usize, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        self.timed(push_failed, || self.inner.open_on(index, req))
    }
    fn status(&self, id: &str) -> Result<PushStatus, PushError> {
        self.timed(push_failed, || self.inner.status(id))
    }
    fn cancel(&self, id: &str) -> Result<(), PushError> {
        self.timed(push_failed, || self.inner.cancel(id))
    }
}

/// privacyIDEA's "no" is an answer; no server answering is a failure.
fn privacyidea_failed<T>(called: &Called<T>) -> bool {
    matches!(called.result, Err(PiError::Unavailable(_)))
}

impl Validate for Metered<dyn Validate> {
    fn check(&self, form: &[(&str, &str)]) -> Called<CheckAnswer> {
        self.timed(privacyidea_failed, || self.inner.check(form))
    }
    fn poll(&self, transaction_id: &str) -> Called<PollStatus> {
        self.timed(privacyidea_failed, || self.inner.poll(transaction_id))
    }
}

impl DuoApi for Metered<dyn DuoApi> {
    fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Answer, DuoError> {
        // Duo unreachable or failing is a failure; a refusal or a 429 is an answer, and
        // /auth_status cut by `timeout` is a long poll that had nothing to say yet.
        let failed = |result: &Result<Answer, DuoError>| match result {
            Err(DuoError::Unavailable(_)) => true,
            Err(DuoError::TimedOut) => !path.ends_with("/auth_status"),
            _ => false,
        };
        let started = Instant::now();
        let result = self.inner.call(method, path, params);
        // A call held back by the 429 back-off never went to Duo: nothing to time.
        if !matches!(result, Err(DuoError::BackingOff)) {
            self.counters.observe(self.call, started.elapsed(), failed(&result));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each call from a script.
    struct Scripted(std::sync::Mutex<Vec<Result<Answer, DuoError>>>);

    impl DuoApi for Scripted {
        fn call(&self, _method: &str, _path: &str, _params: &[(&str, &str)]) -> Result<Answer, DuoError> {
            self.0.lock().unwrap().remove(0)
        }
    }

    #[test]
    fn a_duo_call_held_back_by_the_429_back_off_is_not_timed() {
        let counters: &'static Counters = Box::leak(Box::default());
        let script = vec![Err(DuoError::RateLimited), Err(DuoError::BackingOff), Ok(Answer::new())];
        let api: Box<dyn DuoApi> = Box::new(Scripted(std::sync::Mutex::new(script)));
        let metered = Metered::wrap(api, Call::Duo, counters);
        for _ in 0..3 {
            let _ = metered.call("GET", "/auth/v2/check", &[]);
        }
        let snapshot = counters.snapshot();
        let (_, duo) = snapshot.calls.iter().find(|(call, _)| *call == Call::Duo).unwrap();
        assert_eq!(duo.count, 2, "the 429 and the answer were sent; the call during the back-off was not");
    }
}

//! The outgoing calls of the engines (the SMS and e-mail gateways, the push
//! provider, privacyIDEA, Duo), timed and their failures counted, when
//! `stats { file }` turns the counters on: a wrapper around each, so that the
//! callers do not change. (The Redis store times its own operations.)

use std::time::Instant;

use crate::backend::duo::client::{Answer, CallError as DuoError, DuoApi};
use crate::backend::privacyidea::answer::{CheckAnswer, PollStatus};
use crate::backend::privacyidea::client::{CallError as PiError, Called, Validate};
use crate::channel::gateway::{SendError, Sender};
use crate::channel::push::{PushError, PushProvider, PushRequest, PushStatus};
use crate::stats::{Call, Counters};

pub(super) struct MeteredSender {
    pub(super) inner: Box<dyn Sender>,
    pub(super) call: Call,
    pub(super) counters: &'static Counters,
}

impl MeteredSender {
    pub(super) fn wrap(inner: Box<dyn Sender>, call: Call, counters: &'static Counters) -> Box<dyn Sender> {
        counters.uses(call);
        Box::new(MeteredSender { inner, call, counters })
    }

    fn timed(&self, send: impl FnOnce() -> Result<(), SendError>) -> Result<(), SendError> {
        let started = Instant::now();
        let result = send();
        self.counters.observe(self.call, started.elapsed(), result.is_err());
        result
    }
}

impl Sender for MeteredSender {
    fn send(&self, user: &str, destination: &str, message: &str) -> Result<(), SendError> {
        self.timed(|| self.inner.send(user, destination, message))
    }

    fn send_rendered(
        &self,
        user: &str,
        destination: &str,
        message: &str,
        values: &[(&str, &str)],
    ) -> Result<(), SendError> {
        self.timed(|| self.inner.send_rendered(user, destination, message, values))
    }
}

pub(super) struct MeteredPush {
    inner: Box<dyn PushProvider>,
    counters: &'static Counters,
}

impl MeteredPush {
    pub(super) fn wrap(inner: Box<dyn PushProvider>, counters: &'static Counters) -> Box<dyn PushProvider> {
        counters.uses(Call::Push);
        Box::new(MeteredPush { inner, counters })
    }

    fn timed<T>(&self, call: impl FnOnce() -> Result<T, PushError>) -> Result<T, PushError> {
        let started = Instant::now();
        let result = call();
        // A refusal (4xx) is an answer; a provider that fails or is unreachable is a failure.
        let failed = result.as_ref().err().is_some_and(crate::channel::push::is_failure);
        self.counters.observe(Call::Push, started.elapsed(), failed);
        result
    }
}

impl PushProvider for MeteredPush {
    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        self.timed(|| self.inner.open(req))
    }
    fn open_on(&self, index: usize, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        self.timed(|| self.inner.open_on(index, req))
    }
    fn status(&self, id: &str) -> Result<PushStatus, PushError> {
        self.timed(|| self.inner.status(id))
    }
    fn cancel(&self, id: &str) -> Result<(), PushError> {
        self.timed(|| self.inner.cancel(id))
    }
}

pub(super) struct MeteredPrivacyIdea {
    inner: Box<dyn Validate>,
    counters: &'static Counters,
}

impl MeteredPrivacyIdea {
    pub(super) fn wrap(inner: Box<dyn Validate>, counters: &'static Counters) -> Box<dyn Validate> {
        counters.uses(Call::PrivacyIdea);
        Box::new(MeteredPrivacyIdea { inner, counters })
    }

    fn timed<T>(&self, call: impl FnOnce() -> Called<T>) -> Called<T> {
        let started = Instant::now();
        let called = call();
        // privacyIDEA's "no" is an answer; no server answering is a failure.
        let failed = matches!(called.result, Err(PiError::Unavailable(_)));
        self.counters.observe(Call::PrivacyIdea, started.elapsed(), failed);
        called
    }
}

impl Validate for MeteredPrivacyIdea {
    fn check(&self, form: &[(&str, &str)]) -> Called<CheckAnswer> {
        self.timed(|| self.inner.check(form))
    }
    fn poll(&self, transaction_id: &str) -> Called<PollStatus> {
        self.timed(|| self.inner.poll(transaction_id))
    }
}

pub(super) struct MeteredDuo {
    inner: Box<dyn DuoApi>,
    counters: &'static Counters,
}

impl MeteredDuo {
    pub(super) fn wrap(inner: Box<dyn DuoApi>, counters: &'static Counters) -> Box<dyn DuoApi> {
        counters.uses(Call::Duo);
        Box::new(MeteredDuo { inner, counters })
    }
}

impl DuoApi for MeteredDuo {
    fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Answer, DuoError> {
        let started = Instant::now();
        let result = self.inner.call(method, path, params);
        // Duo unreachable or failing is a failure; a refusal or a 429 is an answer, and
        // /auth_status cut by `timeout` is a long poll that had nothing to say yet.
        let failed = match &result {
            Err(DuoError::Unavailable(_)) => true,
            Err(DuoError::TimedOut) => !path.ends_with("/auth_status"),
            _ => false,
        };
        self.counters.observe(Call::Duo, started.elapsed(), failed);
        result
    }
}

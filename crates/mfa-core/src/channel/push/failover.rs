//! Several providers behind one [`PushProvider`]: a primary and a secondary,
//! asked through [`crate::channel::failover::Health`].

use std::fmt;
use std::time::Duration;

use super::id::{route, tag};
use super::provider::{is_failure, PushError, PushProvider, PushRequest, PushStatus};
use crate::channel::failover::{Health, WhenAllSkipped};

/// Several providers behind one: tries them in order (primary, then
/// secondary).
///
/// A provider that fails (timeout, unreachable, HTTP 5xx, bad answer) is
/// skipped for `skip_for` before it is tried again, so that a dead primary
/// does not cost every login a timeout. If every provider is being skipped,
/// the one whose skip ends first is tried all the same: a call is never
/// refused without trying at least one. Any other answer (a 4xx, say) means
/// that the provider is up: it is returned as is, without trying the next.
///
/// A push id is tied to the provider that created it: [`Failover::create`]
/// gives `"{index}:{provider's id}"` (index 0 for the first provider), and
/// `status` and `cancel` go to that provider, skipped or not. Their failures
/// count for the skipping too, and any answer from a provider ends its skip.
///
/// When `create` fails, the error is [`PushError::AllDown`] if there are
/// several providers and every one was tried for this call and failed;
/// otherwise it is the error of the last provider tried (with one provider, its
/// own error). With no provider at all it is `AllDown`.
pub struct Failover {
    providers: Vec<Box<dyn PushProvider>>,
    health: Health,
}

impl fmt::Debug for Failover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("providers", &self.providers.len())
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Failover {
    pub fn new(providers: Vec<Box<dyn PushProvider>>, skip_for: Duration) -> Failover {
        let health = Health::new(providers.len(), skip_for, WhenAllSkipped::SoonestBack);
        Failover { providers, health }
    }

    /// Calls provider `index` and notes how it went.
    fn on<T>(
        &self,
        index: usize,
        call: impl FnOnce(&dyn PushProvider) -> Result<T, PushError>,
    ) -> Result<T, PushError> {
        let result = call(self.providers[index].as_ref());
        self.health.note(index, result.as_ref().is_err_and(is_failure));
        result
    }
}

impl PushProvider for Failover {
    fn open_on(&self, index: usize, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        if index >= self.providers.len() {
            return self.open(req);
        }
        let (id, status) = self.on(index, |p| p.open(req))?;
        Ok((tag(index, &id), status))
    }

    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        // A refusal is the provider's answer; only failures pass it over.
        let asked = self.health.first_answer(|i| match self.providers[i].open(req) {
            Err(e) if is_failure(&e) => Err(e),
            answered => Ok(answered),
        });
        match asked.answer {
            Some((i, answered)) => answered.map(|(id, status)| (tag(i, &id), status)),
            None if asked.failures.len() > 1 && asked.failures.len() == self.providers.len() => Err(PushError::AllDown),
            None => Err(asked.failures.into_iter().last().map_or(PushError::AllDown, |(_, e)| e)),
        }
    }

    fn status(&self, id: &str) -> Result<PushStatus, PushError> {
        let (i, inner) = route(id, self.providers.len())?;
        self.on(i, |p| p.status(inner))
    }

    fn cancel(&self, id: &str) -> Result<(), PushError> {
        let (i, inner) = route(id, self.providers.len())?;
        self.on(i, |p| p.cancel(inner))
    }
}

//! Push approval: after the first factor, a push to the user's device, and a
//! wait for the answer that always ends within `push.wait` (plus the bound of
//! the HTTP calls), with a cap on how many logins wait at once so that push can
//! never take all of FreeRADIUS's worker threads.
//!
//! A request that repeats a login already waiting (a retransmission with a new
//! RADIUS ID: same user, NAS and password) joins the waiting push instead of
//! sending a second one; the provider's idempotency key (`request_id`) does the
//! same for the other server of a pair.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{Decision, Engine, Origin, Outcome, Trail};
use crate::config::{Approval, Failmode, Push};
use crate::tokens::User;
use crate::push::{Failover, HttpPushProvider, ProviderConfig, PushError, PushProvider, PushRequest, PushStatus};
use crate::template::render;

/// How a push ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ending {
    Approved,
    Denied,
    /// No answer from the user in time (or the provider says the push expired).
    TimedOut,
    /// The provider could not be used.
    Unavailable(String),
}

/// One push being waited for, shared by the requests that repeat its login.
#[derive(Default)]
struct Waiter {
    ending: Mutex<Option<Ending>>,
    done: Condvar,
}

/// The push side of an engine.
pub(super) struct Pusher {
    provider: Box<dyn PushProvider>,
    waiting: AtomicUsize,
    logins: Mutex<HashMap<[u8; 32], Arc<Waiter>>>,
}

/// Keeps the count of blocking waits right however the wait ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pusher {
    pub(super) fn new(cfg: &Push) -> Result<Pusher, String> {
        let mut providers: Vec<Box<dyn PushProvider>> = Vec::new();
        for url in &cfg.urls {
            let provider = HttpPushProvider::new(ProviderConfig {
                base_url: url.clone(),
                authorization: cfg.authorization.clone(),
                timeout: cfg.timeout,
            })?;
            providers.push(Box::new(provider));
        }
        Ok(Self::with_provider(Box::new(Failover::new(providers, cfg.skip_failing))))
    }

    pub(super) fn with_provider(provider: Box<dyn PushProvider>) -> Pusher {
        Pusher { provider, waiting: AtomicUsize::new(0), logins: Mutex::new(HashMap::new()) }
    }
}

/// What identifies one login attempt: user, NAS and the password it came with.
fn login_key(user: &str, nas: &str, password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user.as_bytes(), nas.as_bytes(), password] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// The provider's idempotency key for one push: the same inputs give the same
/// key on either server of a pair.
fn request_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    fn push_parts(&self) -> Option<(&Push, &Pusher)> {
        Some((self.cfg.push.as_ref()?, self.pusher.as_ref()?))
    }

    /// Creates (or, with the same nonce, finds again) the push of a challenge dialogue.
    pub(super) fn create_push(&self, user: &str, origin: &Origin<'_>, nonce: &str) -> Result<String, PushError> {
        let (cfg, pusher) = self.push_parts().ok_or(PushError::AllDown)?;
        let message = render(&cfg.message, &[("user", user), ("client", origin.client), ("nas", origin.nas_name)]);
        let id = request_id(&[self.name.as_bytes(), user.as_bytes(), origin.nas.as_bytes(), nonce.as_bytes()]);
        pusher.provider.create(&PushRequest { user, message: &message, client: origin.client, request_id: &id })
    }

    /// How the push of a challenge dialogue stands now.
    pub(super) fn push_status(&self, user: &str, origin: &Origin<'_>, nonce: &str) -> Result<PushStatus, PushError> {
        let (_, pusher) = self.push_parts().ok_or(PushError::AllDown)?;
        let id = self.create_push(user, origin, nonce)?;
        pusher.provider.status(&id)
    }

    pub(super) fn push_approved(&self, user: &str, trail: &mut Trail) -> Decision {
        let mut state = self.state();
        self.reset_failures(user, &mut state, trail);
        trail.debug(format!("accepted: \"{user}\" approved the push"));
        Decision::accept()
    }

    /// A provider that cannot be used: push.failmode decides.
    pub(super) fn push_unavailable(&self, user: &str, why: &str, trail: &mut Trail) -> Decision {
        let failmode = self.cfg.push.as_ref().map_or(Failmode::Secure, |p| p.failmode);
        match failmode {
            Failmode::Secure => {
                trail.error(format!("rejected: \"{user}\": push unavailable ({why}); push.failmode = secure"));
                Decision::refuse(Outcome::Reject, self.cfg.messages.push_unavailable.clone())
            }
            Failmode::Safe => {
                trail.warn(format!(
                    "accepted \"{user}\" on the first factor alone: push unavailable ({why}); push.failmode = safe"
                ));
                Decision::accept()
            }
        }
    }

    /// A push after the first factor: waited for here, or answered in a challenge round
    /// (push.approval = challenge, or when too many logins already wait).
    pub(super) fn push_login(&self, user: &str, entry: &User, origin: &Origin<'_>, password: &[u8], trail: &mut Trail) -> Decision {
        let Some((cfg, pusher)) = self.push_parts() else {
            trail.error("push without push settings");
            return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
        };
        if cfg.approval == Approval::Challenge {
            return self.push_challenge(user, entry, origin, trail);
        }
        let key = login_key(user, origin.nas, password);
        let deadline = Instant::now() + cfg.wait;

        // A repeat of a login already waiting joins it.
        let (waiter, owner) = {
            let mut logins = pusher.logins.lock().unwrap_or_else(|p| p.into_inner());
            match logins.get(&key) {
                Some(w) => (Arc::clone(w), false),
                None => {
                    let w = Arc::new(Waiter::default());
                    logins.insert(key, Arc::clone(&w));
                    (w, true)
                }
            }
        };
        if !owner {
            // A joiner holds a thread too: it counts toward max_waiting.
            if pusher.waiting.fetch_add(1, Ordering::SeqCst) >= cfg.max_waiting {
                pusher.waiting.fetch_sub(1, Ordering::SeqCst);
                trail.warn(format!("rejected: \"{user}\": too many logins waiting for a push (push.max_waiting)"));
                return Decision::refuse(Outcome::Reject, self.cfg.messages.push_busy.clone());
            }
            let _slot = Slot(&pusher.waiting);
            trail.info(format!("\"{user}\" repeated a login that is waiting for a push: joining it"));
            let ending = wait_for(&waiter, deadline + cfg.timeout * 2);
            return self.push_decision(user, ending, trail);
        }

        let ending = if pusher.waiting.fetch_add(1, Ordering::SeqCst) >= cfg.max_waiting {
            pusher.waiting.fetch_sub(1, Ordering::SeqCst);
            None
        } else {
            let _slot = Slot(&pusher.waiting);
            Some(self.push_and_wait(pusher, cfg, user, origin, &key, deadline, trail))
        };
        // Whatever happened, the requests that joined get the same ending.
        let published = ending.clone().unwrap_or(Ending::Unavailable("busy".into()));
        *waiter.ending.lock().unwrap_or_else(|p| p.into_inner()) = Some(published);
        waiter.done.notify_all();
        pusher.logins.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);

        match ending {
            Some(ending) => self.push_decision(user, Some(ending), trail),
            None if cfg.busy_challenges => {
                trail.info(format!(
                    "\"{user}\": {} logins already wait for a push (push.max_waiting): approval by challenge instead",
                    cfg.max_waiting
                ));
                self.push_challenge(user, entry, origin, trail)
            }
            None => {
                trail.warn(format!(
                    "rejected: \"{user}\": {} logins are already waiting for a push (push.max_waiting)",
                    cfg.max_waiting
                ));
                Decision::refuse(Outcome::Reject, self.cfg.messages.push_busy.clone())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_and_wait(
        &self,
        pusher: &Pusher,
        cfg: &Push,
        user: &str,
        origin: &Origin<'_>,
        key: &[u8; 32],
        deadline: Instant,
        trail: &mut Trail,
    ) -> Ending {
        let message = render(&cfg.message, &[("user", user), ("client", origin.client), ("nas", origin.nas_name)]);
        // The same login within one wait gets the same id at the provider, from either server.
        let window = self.clock.now() / cfg.wait.as_secs().max(1);
        let id = request_id(&[self.name.as_bytes(), key, &window.to_be_bytes()]);
        let request = PushRequest { user, message: &message, client: origin.client, request_id: &id };
        let id = match pusher.provider.create(&request) {
            Ok(id) => id,
            Err(e) => return Ending::Unavailable(format!("creating the push: {e}")),
        };
        trail.info(format!("push sent to \"{user}\", waiting up to {} s", cfg.wait.as_secs()));
        let mut last_error: Option<PushError> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                let _ = pusher.provider.cancel(&id);
                return match last_error {
                    Some(e) => Ending::Unavailable(format!("reading the push's status: {e}")),
                    None => Ending::TimedOut,
                };
            }
            std::thread::sleep(cfg.poll_interval.min(deadline - now));
            match pusher.provider.status(&id) {
                Ok(PushStatus::Approved) => return Ending::Approved,
                Ok(PushStatus::Denied) => return Ending::Denied,
                Ok(PushStatus::Expired) => return Ending::TimedOut,
                Ok(PushStatus::Pending) => last_error = None,
                Err(e) => last_error = Some(e),
            }
        }
    }

    fn push_decision(&self, user: &str, ending: Option<Ending>, trail: &mut Trail) -> Decision {
        let m = &self.cfg.messages;
        match ending {
            Some(Ending::Approved) => self.push_approved(user, trail),
            Some(Ending::Denied) => {
                trail.info(format!("rejected: \"{user}\" denied the push"));
                Decision::refuse(Outcome::Reject, m.push_denied.clone())
            }
            Some(Ending::TimedOut) | None => {
                trail.info(format!("rejected: \"{user}\" did not answer the push in time"));
                Decision::refuse(Outcome::Reject, m.push_timeout.clone())
            }
            Some(Ending::Unavailable(why)) if why == "busy" => {
                trail.info(format!("rejected: \"{user}\": the login it repeated was refused as busy"));
                Decision::refuse(Outcome::Reject, m.push_busy.clone())
            }
            Some(Ending::Unavailable(why)) => self.push_unavailable(user, &why, trail),
        }
    }
}

/// Waits for the owner of a login to publish how its push ended, until `deadline`.
fn wait_for(waiter: &Waiter, deadline: Instant) -> Option<Ending> {
    let mut ending = waiter.ending.lock().unwrap_or_else(|p| p.into_inner());
    while ending.is_none() {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        let (guard, _) = waiter
            .done
            .wait_timeout(ending, deadline - now)
            .unwrap_or_else(|p| p.into_inner());
        ending = guard;
    }
    ending.clone()
}

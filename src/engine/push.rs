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

use super::{Decision, Engine, Outcome, Trail};
use crate::config::{Failmode, Push};
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

/// Facts about the request that the push message and the login key use.
pub(super) struct PushContext<'a> {
    pub user: &'a str,
    pub nas: &'a str,
    pub client: &'a str,
    pub nas_name: &'a str,
    pub password: &'a [u8],
}

impl Engine {
    pub(super) fn push_login(&self, ctx: &PushContext<'_>, trail: &mut Trail) -> Decision {
        let (Some(cfg), Some(pusher)) = (self.cfg.push.as_ref(), self.pusher.as_ref()) else {
            trail.error("mode push without push settings");
            return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
        };
        let user = ctx.user;
        let key = login_key(user, ctx.nas, ctx.password);
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
            return self.push_decision(user, ending, cfg.failmode, trail);
        }

        let ending = if pusher.waiting.fetch_add(1, Ordering::SeqCst) >= cfg.max_waiting {
            pusher.waiting.fetch_sub(1, Ordering::SeqCst);
            None
        } else {
            let _slot = Slot(&pusher.waiting);
            Some(self.push_and_wait(pusher, cfg, ctx, &key, deadline, trail))
        };
        // Whatever happened, the requests that joined get the same ending.
        let published = ending.clone().unwrap_or(Ending::Unavailable("busy".into()));
        *waiter.ending.lock().unwrap_or_else(|p| p.into_inner()) = Some(published);
        waiter.done.notify_all();
        pusher.logins.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);

        match ending {
            Some(ending) => self.push_decision(user, Some(ending), cfg.failmode, trail),
            None => {
                trail.warn(format!(
                    "rejected: \"{user}\": {} logins are already waiting for a push (push.max_waiting)",
                    cfg.max_waiting
                ));
                Decision::refuse(Outcome::Reject, self.cfg.messages.push_busy.clone())
            }
        }
    }

    fn push_and_wait(
        &self,
        pusher: &Pusher,
        cfg: &Push,
        ctx: &PushContext<'_>,
        key: &[u8; 32],
        deadline: Instant,
        trail: &mut Trail,
    ) -> Ending {
        let message = render(&cfg.message, &[("user", ctx.user), ("client", ctx.client), ("nas", ctx.nas_name)]);
        // The same login within one wait gets the same id at the provider, from either server.
        let window = self.clock.now() / cfg.wait.as_secs().max(1);
        let mut id_hash = Sha256::new();
        id_hash.update(key);
        id_hash.update(window.to_be_bytes());
        let request_id: String = id_hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        let request = PushRequest { user: ctx.user, message: &message, client: ctx.client, request_id: &request_id };
        let id = match pusher.provider.create(&request) {
            Ok(id) => id,
            Err(e) => return Ending::Unavailable(format!("creating the push: {e}")),
        };
        trail.info(format!("push sent to \"{}\", waiting up to {} s", ctx.user, cfg.wait.as_secs()));
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

    fn push_decision(&self, user: &str, ending: Option<Ending>, failmode: Failmode, trail: &mut Trail) -> Decision {
        let m = &self.cfg.messages;
        match ending {
            Some(Ending::Approved) => {
                let mut state = self.state();
                self.reset_failures(user, &mut state, trail);
                trail.debug(format!("accepted: \"{user}\" approved the push"));
                Decision::accept()
            }
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
            Some(Ending::Unavailable(why)) => match failmode {
                Failmode::Secure => {
                    trail.error(format!("rejected: \"{user}\": push unavailable ({why}); push.failmode = secure"));
                    Decision::refuse(Outcome::Reject, m.push_unavailable.clone())
                }
                Failmode::Safe => {
                    trail.warn(format!(
                        "accepted \"{user}\" on the first factor alone: push unavailable ({why}); push.failmode = safe"
                    ));
                    Decision::accept()
                }
            },
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

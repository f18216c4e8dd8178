//! Push approval: after the first factor, a push to the user's device, and a
//! wait for the answer that always ends within `push.wait` (plus the bound of
//! the HTTP calls), with a cap on how many logins wait at once so that push can
//! never take all of FreeRADIUS's worker threads.
//!
//! A request that repeats a login already waiting (a retransmission with a new
//! RADIUS ID: same user, NAS and password) joins the waiting push instead of
//! sending a second one, and answers with that login's decision; the provider's
//! idempotency key (`request_id`) does the same for the other server of a pair.
//! Either way the push is counted once (a denial toward the lockout, an approval
//! in the counters): on one server by the request that sent it, and among the
//! servers sharing a store by the first that saw it end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::joining::{login_key, Entry, InProgress, Joiner};
use super::limits::Request;
use super::{Decision, Engine, Origin, Outcome, Trail};
use crate::channel::push::{
    Failover, HttpPushProvider, ProviderConfig, PushError, PushProvider, PushRequest, PushStatus,
};
use crate::config::{Approval, Failmode, Mode, Push};
use crate::stats::Cause;
use crate::store::tokens::User;
use crate::text::template::render;

/// How a push ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ending {
    Approved,
    Denied,
    /// No answer from the user in time (or the provider says the push expired).
    TimedOut,
    /// The provider could not be used (unreachable, slow, 5xx, garbage): failmode decides.
    Unavailable(String),
    /// The provider refused the push (a 4xx), or failed after it was sent: never an accept.
    Refused(String),
    /// Not sent: the user is locked or past `limits.pushes` (the Reply-Message says until when).
    Limited(Outcome, String),
    /// Not sent: the state store failed (why, for the log): refused as unavailable.
    StoreFailed(String),
}

/// How a push that was waited for ended, and whose it was: `elsewhere` when
/// another server sharing the store saw its end first, and counts it.
struct Waited {
    ending: Ending,
    elsewhere: bool,
}

/// The push side of an engine.
pub(super) struct Pusher {
    provider: Box<dyn PushProvider>,
    waiting: AtomicUsize,
    /// The logins waiting for their push, and their decisions for the requests that repeat them.
    logins: InProgress<Decision>,
}

/// Keeps the count of blocking waits right however the wait ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pusher {
    /// The error names the configuration item it is about.
    pub(super) fn new(cfg: &Push) -> Result<Pusher, (&'static str, String)> {
        let mut providers: Vec<Box<dyn PushProvider>> = Vec::new();
        for (index, url) in cfg.urls.iter().enumerate() {
            let provider = HttpPushProvider::new(ProviderConfig {
                base_url: url.clone(),
                authorization: cfg.authorization.clone(),
                timeout: cfg.timeout,
                ca_file: cfg.ca_file.clone(),
                ca_path: cfg.ca_path.clone(),
            })
            .map_err(|e| {
                let item = match e.field {
                    "authorization" => "push.authorization",
                    "timeout" => "push.timeout",
                    "ca_file" => "push.ca_file",
                    "ca_path" => "push.ca_path",
                    _ if index == 0 => "push.url",
                    _ => "push.secondary_url",
                };
                (item, e.message)
            })?;
            providers.push(Box::new(provider));
        }
        Ok(Self::with_provider(Box::new(Failover::new(providers, cfg.skip_failing))))
    }

    pub(super) fn with_provider(provider: Box<dyn PushProvider>) -> Pusher {
        Pusher { provider, waiting: AtomicUsize::new(0), logins: InProgress::default() }
    }

    /// The provider's calls timed and counted (`stats { file }`).
    pub(super) fn metered(self, counters: &'static crate::stats::Counters) -> Pusher {
        Pusher {
            provider: Box::new(super::metered::Metered::wrap(self.provider, crate::stats::Call::Push, counters)),
            ..self
        }
    }
}

/// What identifies one login attempt: user, NAS, the calling station and port, and
/// the password it came with. A NAS's re-send of the login has them all alike;
/// another person's login (another station) does not.
fn push_login_key(user: &str, origin: &Origin<'_>, password: &[u8]) -> [u8; 32] {
    login_key(&[user.as_bytes(), origin.nas.as_bytes(), origin.session.as_bytes(), password])
}

/// The number a challenge's push carries and its prompt shows: the first two
/// digits of the dialogue's random nonce, so that every round of the dialogue,
/// on any server, shows the same one.
pub(super) fn push_number(nonce: &str) -> &str {
    nonce.get(..2).unwrap_or(nonce)
}

/// The provider's idempotency key for one push: an HMAC under `key` (derived
/// from the State key, which both servers of a pair hold), so the same inputs
/// give the same id on either server, while whoever reads the provider's logs
/// cannot test guesses of what went in (the login's password among them).
fn request_id(key: &[u8; 32], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    fn push_parts(&self) -> Option<(&Push, &Pusher)> {
        Some((self.cfg.push.as_ref()?, self.pusher.as_ref()?))
    }

    /// Creates (or, with the same nonce, finds again on provider `on`) the push of a
    /// challenge dialogue, with its status: the nonce is random per dialogue, so what it
    /// finds is its own.
    pub(super) fn create_push(
        &self,
        user: &str,
        origin: &Origin<'_>,
        nonce: &str,
        on: Option<usize>,
    ) -> Result<(String, PushStatus), PushError> {
        let (cfg, pusher) = self.push_parts().ok_or(PushError::AllDown)?;
        let number = push_number(nonce);
        let message = render(
            &cfg.message,
            &[("user", user), ("client", origin.client), ("nas", origin.nas_name), ("number", number)],
        );
        let id = request_id(
            &self.push_id_key,
            &[self.name.as_bytes(), user.as_bytes(), origin.nas.as_bytes(), nonce.as_bytes()],
        );
        let request =
            PushRequest { user, message: &message, client: origin.client, request_id: &id, number: Some(number) };
        match on {
            Some(index) => pusher.provider.open_on(index, &request),
            None => pusher.provider.open(&request),
        }
    }

    /// How the push of a challenge dialogue stands now. `held` is the dialogue's nonce
    /// and, in its last digit, the provider that holds the push: asking the first
    /// working one instead would send a second push when the primary is back.
    pub(super) fn push_status(&self, user: &str, origin: &Origin<'_>, held: &str) -> Result<PushStatus, PushError> {
        let (_, pusher) = self.push_parts().ok_or(PushError::AllDown)?;
        let (nonce, index) = held.split_at(held.len().saturating_sub(1));
        let (id, status) = self.create_push(user, origin, nonce, index.parse().ok())?;
        if status != PushStatus::Pending {
            return Ok(status);
        }
        pusher.provider.status(&id)
    }

    pub(super) fn push_approved(&self, user: &str, trail: &mut Trail) -> Decision {
        if let Some(refused) = self.reset_failures(user, trail) {
            return refused;
        }
        trail.debug(format!("accepted: \"{user}\" approved the push"));
        Decision::accept_push()
    }

    /// A push that could not be sent. push.failmode decides only when the provider
    /// failed (unreachable, slow, 5xx, garbage); a refusal (4xx) always rejects.
    pub(super) fn push_not_sent(&self, user: &str, error: &PushError, trail: &mut Trail) -> Decision {
        let why = format!("creating the push: {error}");
        if crate::channel::push::is_failure(error) {
            self.push_unavailable(user, &why, trail)
        } else {
            self.push_refused(user, &why, trail)
        }
    }

    /// A push whose answer cannot be known (refused, or the provider failed after it
    /// was sent: the user may have seen it and ignored it): always a reject.
    pub(super) fn push_refused(&self, user: &str, why: &str, trail: &mut Trail) -> Decision {
        trail.error(format!("rejected: \"{user}\": push failed ({why})"));
        Decision::reject(Cause::PushFailed, self.cfg.messages.push_unavailable.clone())
    }

    /// A provider that cannot be used: push.failmode decides.
    fn push_unavailable(&self, user: &str, why: &str, trail: &mut Trail) -> Decision {
        let failmode = self.cfg.push.as_ref().map_or(Failmode::Secure, |p| p.failmode);
        match failmode {
            Failmode::Secure => {
                trail.error(format!("rejected: \"{user}\": push unavailable ({why}); push.failmode = secure"));
                Decision::reject(Cause::PushFailed, self.cfg.messages.push_unavailable.clone())
            }
            Failmode::Safe if self.push_is_the_only_way(user, trail) => {
                trail.warn(format!(
                    "accepted \"{user}\" on the first factor alone: push unavailable ({why}); push.failmode = safe"
                ));
                Decision::accept_failsafe()
            }
            Failmode::Safe => {
                trail.error(format!(
                    "rejected: \"{user}\": push unavailable ({why}); push.failmode = safe lets in only a user \
                     whose one method is the push, and this one has another"
                ));
                Decision::reject(Cause::PushFailed, self.cfg.messages.push_unavailable.clone())
            }
        }
    }

    /// `failmode = safe` is for a user the push is the one second factor of: every user
    /// in modes `push` and `otp-or-push` (a password login's one way), and in the
    /// challenge modes a user with no token and nowhere to send a code. A user who has
    /// another method keeps to it while the provider fails, else choosing the push
    /// would turn their code off.
    fn push_is_the_only_way(&self, user: &str, trail: &mut Trail) -> bool {
        if matches!(self.cfg.mode, Mode::Push | Mode::OtpOrPush) {
            return true;
        }
        // A user gone from the token file since the login began is not let in.
        let db = self.tokens(trail);
        db.user(user).is_some_and(|entry| !super::dialogue::has_a_method_besides_push(entry, self.dialogues.as_ref()))
    }

    /// A push after the first factor: waited for here, or answered in a challenge round
    /// (push.approval = challenge, or when too many logins already wait).
    pub(super) fn push_login(
        &self,
        user: &str,
        entry: &User,
        origin: &Origin<'_>,
        password: &[u8],
        trail: &mut Trail,
    ) -> Decision {
        let Some((cfg, pusher)) = self.push_parts() else {
            trail.error("push without push settings");
            return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
        };
        if cfg.approval == Approval::Challenge {
            return self.push_challenge(user, entry, origin, trail);
        }
        let key = push_login_key(user, origin, password);
        let deadline = Instant::now() + cfg.wait;

        // A repeat of a login already waiting joins it. The first request publishes
        // its decision however it ends (a panic included: the joined ones are then
        // told nothing), and the login is forgotten.
        let first = match pusher.logins.enter(key) {
            Entry::Joined(other) => return self.join_push(user, cfg, pusher, other, trail),
            Entry::First(first) => first,
        };
        let waited = if pusher.waiting.fetch_add(1, Ordering::SeqCst) >= cfg.max_waiting {
            pusher.waiting.fetch_sub(1, Ordering::SeqCst);
            None
        } else {
            let _slot = Slot(&pusher.waiting);
            Some(self.push_and_wait(pusher, cfg, user, origin, &key, deadline, trail))
        };
        let Some(waited) = waited else {
            let busy = Decision::reject(Cause::RateLimited, self.cfg.messages.push_busy.clone());
            // The requests that joined were not given the challenge: they are refused as busy.
            first.end(busy.clone());
            if cfg.busy_challenges {
                trail.info(format!(
                    "\"{user}\": {} logins already wait for a push (push.max_waiting): approval by challenge instead",
                    cfg.max_waiting
                ));
                return self.push_challenge(user, entry, origin, trail);
            }
            trail.warn(format!(
                "rejected: \"{user}\": {} logins are already waiting for a push (push.max_waiting)",
                cfg.max_waiting
            ));
            return busy;
        };
        first.end(self.push_decision(user, waited, trail))
    }

    /// A repeat of a login waiting for its push: that login's decision, counted as
    /// this request's accept or refusal only (not a second push or failure).
    fn join_push(
        &self,
        user: &str,
        cfg: &Push,
        pusher: &Pusher,
        other: Joiner<Decision>,
        trail: &mut Trail,
    ) -> Decision {
        // A joiner holds a thread too: it counts toward max_waiting.
        if pusher.waiting.fetch_add(1, Ordering::SeqCst) >= cfg.max_waiting {
            pusher.waiting.fetch_sub(1, Ordering::SeqCst);
            trail.warn(format!("rejected: \"{user}\": too many logins waiting for a push (push.max_waiting)"));
            return Decision::reject(Cause::RateLimited, self.cfg.messages.push_busy.clone());
        }
        let _slot = Slot(&pusher.waiting);
        trail.info(format!("\"{user}\" repeated a login that is waiting for a push: joining it"));
        other.wait(cfg.wait + cfg.timeout * 2).map(Decision::joined).unwrap_or_else(|| {
            trail.error(format!(
                "refused \"{user}\": the login this one joined gave no decision in time (slow, or ended without one)"
            ));
            Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone())
        })
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
    ) -> Waited {
        let mine = |ending| Waited { ending, elsewhere: false };
        // No prompt is shown while the login waits: no number to match.
        let message = render(
            &cfg.message,
            &[("user", user), ("client", origin.client), ("nas", origin.nas_name), ("number", "")],
        );
        // The same login within one wait gets the same id at the provider, from either server.
        let window = self.clock.now() / cfg.wait.as_secs().max(1);
        let id = request_id(&self.push_id_key, &[self.name.as_bytes(), key, &window.to_be_bytes()]);
        // A shared store makes the first server's id the login's, across the window's edge too.
        let login = request_id(&self.push_id_key, &[self.name.as_bytes(), b"login", key]);
        let ttl = (cfg.wait + cfg.timeout * 2).as_secs();
        let id = match self.store().join_push(&login, &id, ttl) {
            // Another server's push of this login (a NAS's re-send), or one registered
            // by a request that was then refused: either way, checked and counted below.
            Ok(registered) => registered.unwrap_or(id),
            Err(e) => {
                let why = format!("cannot register the push in the {}: {e}", self.store().describe());
                return mine(Ending::StoreFailed(why));
            }
        };
        // Every request that may open a push is checked against the lock and counted
        // toward limits.pushes, a re-send that joins another server's push too: the
        // registration alone cannot tell that push was ever sent, and a limit errs on
        // the side of fewer pushes.
        if let Some(refusal) = self.refuse_to_reach(Request::Push, user, trail) {
            let message = refusal.messages.into_iter().next().unwrap_or_default();
            return mine(Ending::Limited(refusal.outcome, message));
        }
        let request = PushRequest { user, message: &message, client: origin.client, request_id: &id, number: None };
        let id = match pusher.provider.open(&request) {
            Ok((id, PushStatus::Pending)) => id,
            // Already answered: the push of an earlier login in this window. Never
            // reuse an answer; send this login a push of its own.
            Ok((_, _)) => {
                let fresh = request_id(&self.push_id_key, &[self.name.as_bytes(), key, &random_bytes()]);
                let request = PushRequest { request_id: &fresh, ..request };
                match pusher.provider.open(&request) {
                    Ok((id, _)) => id,
                    Err(e) => return mine(not_sent(e)),
                }
            }
            Err(e) => return mine(not_sent(e)),
        };
        trail.info(format!("push sent to \"{user}\", waiting up to {} s", cfg.wait.as_secs()));
        let answered = |ending| Waited { elsewhere: !self.first_to_end(&id, ttl), ending };
        let mut last_error: Option<PushError> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                let _ = pusher.provider.cancel(&id);
                // The push was sent: the user may have ignored it. A provider that
                // failed since then is no reason to let the login in.
                return match last_error {
                    Some(e) => mine(Ending::Refused(format!("reading the push's status: {e}"))),
                    None => answered(Ending::TimedOut),
                };
            }
            std::thread::sleep(cfg.poll_interval.min(deadline - now));
            match pusher.provider.status(&id) {
                Ok(PushStatus::Approved) => return answered(Ending::Approved),
                Ok(PushStatus::Denied) => return answered(Ending::Denied),
                Ok(PushStatus::Expired) => return answered(Ending::TimedOut),
                Ok(PushStatus::Pending) => last_error = None,
                Err(e) => last_error = Some(e),
            }
        }
    }

    /// Whether this request is the first to see the end of the push `id` (the
    /// provider's), which it then counts (a denial toward the lockout, an approval
    /// in the counters): the servers sharing a store that waited for the same push
    /// count it once. The first writes a random token of its own, so that a
    /// registration whose answer was lost and asked again is still known as its own;
    /// a store that fails leaves the counting here.
    fn first_to_end(&self, id: &str, ttl: u64) -> bool {
        let ended = request_id(&self.push_id_key, &[self.name.as_bytes(), b"ended", id.as_bytes()]);
        let token: String = random_bytes().iter().map(|b| format!("{b:02x}")).collect();
        match self.store().join_push(&ended, &token, ttl) {
            Ok(Some(first)) => first == token,
            Ok(None) | Err(_) => true,
        }
    }

    fn push_decision(&self, user: &str, Waited { ending, elsewhere }: Waited, trail: &mut Trail) -> Decision {
        let m = &self.cfg.messages;
        let failed = |why: String, (cause, message): (Cause, &str), trail: &mut Trail| {
            if elsewhere {
                // The server that sent the push counts the failure toward the lockout.
                trail.info(format!("rejected: {why} (another server saw this push end first and counts it)"));
                Decision::reject(cause, message.to_string()).joined()
            } else {
                self.push_failed(user, &why, (cause, message), trail)
            }
        };
        match ending {
            Ending::Approved if elsewhere => self.push_approved(user, trail).joined(),
            Ending::Approved => self.push_approved(user, trail),
            Ending::Denied => failed(format!("\"{user}\" denied the push"), (Cause::PushDenied, &m.push_denied), trail),
            Ending::TimedOut => failed(
                format!("\"{user}\" did not answer the push in time"),
                (Cause::PushTimeout, &m.push_timeout),
                trail,
            ),
            Ending::Limited(Outcome::Reject, message) => Decision::reject(Cause::RateLimited, message),
            Ending::Limited(outcome, message) => Decision::refuse(outcome, message),
            Ending::Unavailable(why) => self.push_unavailable(user, &why, trail),
            Ending::Refused(why) => self.push_refused(user, &why, trail),
            Ending::StoreFailed(why) => {
                trail.error(format!("refused \"{user}\": {why}"));
                Decision::refuse(Outcome::Fail, m.internal.clone())
            }
        }
    }
}

/// How a push that could not be sent ends: failmode for a failure, reject for a refusal.
fn not_sent(e: PushError) -> Ending {
    let why = format!("creating the push: {e}");
    if crate::channel::push::is_failure(&e) {
        Ending::Unavailable(why)
    } else {
        Ending::Refused(why)
    }
}

/// 16 random bytes (a fresh idempotency key).
/// A key for request ids when there is no State key to derive one from.
pub(super) fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&random_bytes());
    key[16..].copy_from_slice(&random_bytes());
    key
}

pub(super) fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // Without randomness the key is still unique enough for one login: the time.
    if getrandom::getrandom(&mut bytes).is_err() {
        bytes[..16].copy_from_slice(
            &std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                .to_be_bytes(),
        );
    }
    bytes
}

#[cfg(test)]
mod request_id_tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn the_request_id_is_keyed() {
        let parts: [&[u8]; 2] = [b"mfa", b"alice's login, password included"];
        let id = request_id(&[1; 32], &parts);
        assert_eq!(id.len(), 32);
        assert_eq!(id, request_id(&[1; 32], &parts), "the same on either server of a pair");
        assert_ne!(id, request_id(&[2; 32], &parts), "unknown without the key");
        // Not the unkeyed hash of the parts, which anyone could compute from a guess.
        let mut h = Sha256::new();
        for part in parts {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let unkeyed: String = h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(id, unkeyed);
    }
}

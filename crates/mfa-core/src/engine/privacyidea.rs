//! The decisions of the privacyIDEA backend: the request's credential goes to
//! privacyIDEA, whose answer becomes Access-Accept (with mapped reply
//! attributes), Access-Reject, or Access-Challenge with rlm_mfa's own sealed
//! State; push tokens are polled within `poll_wait`.
//!
//! privacyIDEA's reasons ("wrong otp pin", error 904) go to the log; the user
//! sees the configured messages. The password never enters a log line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::joining::farm::{Bounds, Farm, Published, Turn};
use super::joining::{login_key, Entry, InProgress};
use super::{AuthenticateInput, AuthenticateOutput, AuthorizeInput, AuthorizeOutput, Decision, Outcome, Trail};
use crate::backend::mapping::{reply_attributes, Rule};
use crate::backend::privacyidea::answer::USER_NOT_FOUND;
use crate::backend::privacyidea::{
    AnswerError, CallError, Called, Challenge, CheckAnswer, HttpClient, PiConfig, PollMode, PollStatus, Validate,
    Verdict,
};
use crate::challenge::{seal_transaction, unseal_transaction, Binding, StateKey, Transaction};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, StoreChoice};
use crate::stats::Cause;
use crate::store::state_store::StateStore;
use crate::text::{cut, printable};

pub struct PiEngine {
    name: String,
    cfg: Config,
    pi: PiConfig,
    clock: Arc<dyn Clock>,
    client: Box<dyn Validate>,
    key: StateKey,
    /// The answered States (the journal at `state`: privacyIDEA keeps the rest).
    used: Box<dyn StateStore>,
    rules: Vec<Rule>,
    /// Logins polling a push at once.
    waiting: AtomicUsize,
    /// Logins being decided now, by a hash of everything that makes them the same
    /// login: a NAS's re-send with a new RADIUS ID joins the one in progress
    /// instead of sending the code (used up by then) or the push trigger again.
    in_progress: InProgress<Ending>,
    /// With a store shared by a farm: the keys that join re-sends across it.
    farm: Option<Farm>,
}

/// Keeps the count of polling logins right however the wait ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a finished decision is written back.
#[derive(Clone)]
struct Ending {
    decision: Decision,
    attributes: Vec<(String, String)>,
}

impl From<Decision> for Ending {
    fn from(decision: Decision) -> Self {
        Ending { decision, attributes: vec![] }
    }
}

impl PiEngine {
    pub fn new(name: &str, cfg: Config, clock: Arc<dyn Clock>) -> Result<PiEngine, ConfigError> {
        let pi = cfg.privacyidea.clone().ok_or(ConfigError::new("backend", "not privacyidea"))?;
        let client = HttpClient::new(&pi.client).map_err(|e| {
            let item = match e.field {
                "ca_file" => "privacyidea.ca_file",
                "ca_path" => "privacyidea.ca_path",
                "api_key" => "privacyidea.api_key",
                "api_key_header" => "privacyidea.api_key_header",
                _ => "privacyidea.url",
            };
            ConfigError::new(item, e.message)
        })?;
        Self::with_client(name, cfg, clock, Box::new(client))
    }

    /// As [`PiEngine::new`], with the privacyIDEA calls given (tests use a fake).
    pub fn with_client(
        name: &str,
        cfg: Config,
        clock: Arc<dyn Clock>,
        client: Box<dyn Validate>,
    ) -> Result<PiEngine, ConfigError> {
        let pi = cfg.privacyidea.clone().ok_or(ConfigError::new("backend", "not privacyidea"))?;
        let challenge = cfg.challenge.as_ref().ok_or(ConfigError::new("state_key", "required"))?;
        let key =
            StateKey::load_or_create(&challenge.state_key).map_err(|message| ConfigError::new("state_key", message))?;
        let rules = crate::backend::mapping::compile(&cfg.reply)?;
        let farm = matches!(cfg.store, StoreChoice::Redis(_)).then(|| Farm::new(&key));
        let counters = super::counters_of(name, &cfg);
        let client = match counters {
            Some(counters) => {
                Box::new(super::metered::Metered::wrap(client, crate::stats::Call::PrivacyIdea, counters))
            }
            None => client,
        };
        Ok(PiEngine {
            farm,
            name: name.to_string(),
            pi,
            clock,
            client,
            key,
            used: super::open_store(&cfg, counters)?,
            rules,
            waiting: AtomicUsize::new(0),
            in_progress: InProgress::default(),
            cfg,
        })
    }

    /// Shares `store` with the other servers of a farm (for the tests: Redis's stand-in).
    #[cfg(test)]
    pub(super) fn in_farm(mut self, store: Box<dyn StateStore>) -> PiEngine {
        self.farm = Some(Farm::new(&self.key));
        self.used = store;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The `user` and `realm` sent to privacyIDEA for a User-Name (see
    /// `privacyidea.user_name`); an error says why the name is unusable.
    pub(super) fn names(&self, user_name: Option<&[u8]>) -> Result<(String, Option<String>), &'static str> {
        // `realm { strip }` is about the name tokens are looked up by (Stripped-User-Name);
        // privacyIDEA's `user`, when split off, is always the name without its realm.
        let cut = crate::identity::realm::RealmConfig { strip: true, ..self.cfg.realm.clone() };
        let parsed = super::parse_user_name(user_name, &cut)?;
        // parse_user_name has checked that the name is UTF-8.
        let whole = std::str::from_utf8(user_name.unwrap_or_default()).unwrap_or_default();
        Ok(self.pi.user_and_realm(whole, parsed.user, parsed.realm))
    }

    pub fn authorize(&self, input: AuthorizeInput<'_>) -> AuthorizeOutput {
        let mut trail = Trail { quiet: input.quiet, ..Trail::default() };
        let mut out = AuthorizeOutput::default();
        if super::remote_authorize::user_of_request(&self.cfg, &self.name, &input, &mut out, &mut trail) {
            // privacyIDEA checks the whole credential (PIN or password and code).
            out.set_auth_type = input.auth_type.is_none();
            out.outcome = Some(Outcome::Updated);
        }
        out.log = trail.log;
        out
    }

    pub fn authenticate(&self, input: AuthenticateInput) -> AuthenticateOutput {
        let mut trail = Trail::default();
        let ending = self.authenticate_inner(&input, &mut trail);
        AuthenticateOutput {
            outcome: Some(ending.decision.outcome),
            reply_messages: ending.decision.messages,
            challenge_state: ending.decision.state,
            reply_attributes: ending.attributes,
            split: None,
            tally: ending.decision.tally,
            log: trail.log,
        }
    }

    fn authenticate_inner(&self, input: &AuthenticateInput, trail: &mut Trail) -> Ending {
        let messages = &self.cfg.messages;
        let (user, realm) = match self.names(input.user_name) {
            Ok(n) => n,
            Err(why) => {
                trail.info(format!("rejected: {why}"));
                return Decision::refuse(Outcome::Invalid, messages.bad_user.clone()).into();
            }
        };
        let mut pass = input.password.unwrap_or_default();
        if self.pi.split_null_byte {
            pass = pass.split(|&b| b == 0).next().unwrap_or_default();
        }
        let Ok(pass) = std::str::from_utf8(pass) else {
            trail.info(format!("rejected: the User-Password of \"{user}\" is not valid UTF-8"));
            return Decision::reject(Cause::Denied, messages.rejected.clone()).into();
        };
        let bound_user = format!("{user}\0{}", realm.as_deref().unwrap_or(""));
        let binding = Binding { instance: &self.name, user: &bound_user, nas: &input.nas };
        let call =
            Call { user: &user, realm: realm.as_deref(), client: &input.nas_address, binding, started: Instant::now() };

        let Some(state) = input.state else {
            return self.first_round(&call, pass, &input.session, trail);
        };
        let now = self.clock.now();
        let tx = match unseal_transaction(&self.key, &call.binding, now, state) {
            Ok((tx, id)) => match self.used.use_state_once(&user, &id, tx.expires, now) {
                Ok(true) => tx,
                Ok(false) => {
                    trail.info(format!("rejected: \"{user}\" sent a State that was already used"));
                    return Decision::reject(Cause::BadState, messages.bad_state.clone()).into();
                }
                Err(e) => {
                    // Without the record the State could be answered again: fail closed.
                    trail.error(format!("cannot record the answered State in the {}: {e}", self.used.describe()));
                    return Decision::refuse(Outcome::Fail, messages.internal.clone()).into();
                }
            },
            Err(why) => {
                // Never forwarded: privacyIDEA only ever sees transaction ids it issued to us.
                trail.info(format!("rejected: \"{user}\" sent a State this module cannot use: {why}"));
                return Decision::reject(Cause::BadState, messages.bad_state.clone()).into();
            }
        };
        if tx.poll && pass.is_empty() {
            // "Approve, then press OK": has the push been answered?
            return match Self::noted(self.client.poll(&tx.id), trail) {
                Ok(PollStatus::Accepted) => {
                    let answer = self.check(&call, "", Some(&tx.id), trail);
                    self.finish(&call, answer, trail)
                }
                Ok(PollStatus::Declined) => {
                    trail.info(format!("rejected: \"{user}\" declined the push"));
                    Decision::reject(Cause::PushDenied, messages.push_denied.clone()).into()
                }
                Ok(PollStatus::Pending) => {
                    trail.debug(format!("the push to \"{user}\" is not answered yet: asking again"));
                    let again = Challenge {
                        transaction_id: tx.id.clone(),
                        message: messages.push_pending.clone(),
                        poll: true,
                        interactive: tx.interactive,
                    };
                    // The new State ends when the first did: asking again never extends
                    // the challenge past challenge_timeout.
                    self.challenge_until(&call, &again, tx.expires, trail).into()
                }
                Err(e) => self.call_failed(&user, e, trail).into(),
            };
        }
        let answer = self.check(&call, pass, Some(&tx.id), trail);
        self.finish(&call, answer, trail)
    }

    /// A login without a State: privacyIDEA checks the credential, unless the same
    /// login is being decided already (a NAS's re-send), which this one then joins.
    fn first_round(&self, call: &Call, pass: &str, session: &str, trail: &mut Trail) -> Ending {
        let key = login_key(&[
            call.binding.user.as_bytes(),
            call.binding.nas.as_bytes(),
            session.as_bytes(),
            pass.as_bytes(),
        ]);
        match self.in_progress.enter(key) {
            Entry::Joined(other) => {
                trail.debug(format!("the same login of \"{}\" is in progress: waiting for its answer", call.user));
                let joined = other.wait(self.pi.longest);
                joined.map(|ending| Ending { decision: ending.decision.joined(), ..ending }).unwrap_or_else(|| {
                    trail.error(format!("the login of \"{}\" this one joined did not end in time", call.user));
                    Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()).into()
                })
            }
            Entry::First(first) => first.end(self.first_in_farm(call, pass, &key, trail)),
        }
    }

    /// The farm's bounds: the claim kept longer than the login may take, so
    /// that a re-send never claims it a second time; a re-send waiting at most
    /// what the login may take (as one on this server), which ends before the
    /// server's `max_request_time`.
    fn bounds(&self) -> Bounds {
        Bounds { claim: (self.pi.poll_wait + 4 * self.pi.client.timeout).as_secs() + 1, wait: self.pi.longest }
    }

    /// With a store shared by a farm: the first server to see the login asks
    /// privacyIDEA and publishes the ending; a re-send to another server waits
    /// for it there. Alone: asks.
    fn first_in_farm(&self, call: &Call, pass: &str, key: &[u8; 32], trail: &mut Trail) -> Ending {
        let Some(farm) = &self.farm else {
            return self.ask(call, pass, trail);
        };
        let login = farm.login(&self.name, key);
        match farm.enter(&*self.used, login, call.user, self.bounds(), &*self.clock, trail) {
            Turn::First(claimed) => {
                let ending = self.ask(call, pass, trail);
                // The reply attributes travel in the published decision.
                let mut published = ending.decision.clone();
                published.attributes.extend(ending.attributes.iter().cloned());
                claimed.end(&published, self.clock.now(), trail);
                ending
            }
            Turn::Joined(Published::Ending(mut decision)) => {
                let attributes = std::mem::take(&mut decision.attributes);
                Ending { decision: decision.joined(), attributes }
            }
            Turn::Joined(Published::Txid(_)) => {
                trail.error(format!(
                    "refused \"{}\": the login it joined on another server is not understood",
                    call.user
                ));
                Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()).into()
            }
            Turn::Refused => Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()).into(),
        }
    }

    /// privacyIDEA's `/validate/check` of the credential, and what its answer comes to.
    fn ask(&self, call: &Call, pass: &str, trail: &mut Trail) -> Ending {
        trail.debug(format!(
            "asking privacyIDEA about \"{}\"{}",
            call.user,
            call.realm.map(|r| format!(" in realm \"{r}\"")).unwrap_or_default()
        ));
        let answer = self.check(call, pass, None, trail);
        self.finish(call, answer, trail)
    }

    /// A call's result; the servers that failed on the way are logged.
    fn noted<T>(called: Called<T>, trail: &mut Trail) -> Result<T, CallError> {
        for why in called.failed {
            trail.warn(format!("privacyIDEA server failed, the next one answered: {why}"));
        }
        called.result
    }

    fn check(
        &self,
        call: &Call,
        pass: &str,
        transaction_id: Option<&str>,
        trail: &mut Trail,
    ) -> Result<CheckAnswer, CallError> {
        let mut form: Vec<(&str, &str)> = vec![("user", call.user), ("pass", pass)];
        if let Some(realm) = call.realm {
            form.push(("realm", realm));
        }
        if let Some(id) = transaction_id {
            form.push(("transaction_id", id));
        }
        if self.pi.send_client && !call.client.is_empty() {
            form.push(("client", call.client));
        }
        Self::noted(self.client.check(&form), trail)
    }

    fn finish(&self, call: &Call, answer: Result<CheckAnswer, CallError>, trail: &mut Trail) -> Ending {
        let messages = &self.cfg.messages;
        let user = call.user;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return self.call_failed(user, e, trail).into(),
        };
        match answer.verdict {
            Verdict::Accept => self.accept(user, &answer, trail),
            Verdict::Reject => {
                let why = answer.detail.get("message").and_then(|m| m.as_str()).unwrap_or("no reason given");
                trail.info(format!("rejected: privacyIDEA says no to \"{user}\": {}", printable(why, 200)));
                Decision::reject(Cause::Denied, messages.rejected.clone()).into()
            }
            Verdict::Declined => {
                trail.info(format!("rejected: \"{user}\" declined the push"));
                Decision::reject(Cause::PushDenied, messages.push_denied.clone()).into()
            }
            Verdict::Challenge(c) if c.poll && self.pi.poll == PollMode::Wait => self.wait_for_push(call, &c, trail),
            Verdict::Challenge(c) => self.challenge(call, &c, trail).into(),
        }
    }

    fn accept(&self, user: &str, answer: &CheckAnswer, trail: &mut Trail) -> Ending {
        trail.debug(format!("privacyIDEA accepts \"{user}\""));
        let attributes = reply_attributes(&self.rules, &answer.detail);
        for (attribute, value) in &attributes {
            trail.debug(format!("reply: {attribute} = \"{}\"", printable(value, 253)));
        }
        Ending { decision: Decision::accept(), attributes }
    }

    /// An Access-Challenge with privacyIDEA's text and our sealed State.
    fn challenge(&self, call: &Call, c: &Challenge, trail: &mut Trail) -> Decision {
        let Some(limits) = &self.cfg.challenge else {
            return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
        };
        self.challenge_until(call, c, self.clock.now() + limits.timeout, trail)
    }

    /// As [`Self::challenge`], with a State that expires at `expires`.
    fn challenge_until(&self, call: &Call, c: &Challenge, expires: u64, trail: &mut Trail) -> Decision {
        let tx = Transaction { id: c.transaction_id.clone(), poll: c.poll, interactive: c.interactive, expires };
        let state = seal_transaction(&self.key, &call.binding, &tx);
        let text = if c.message.trim().is_empty() { &self.cfg.messages.prompt_code } else { &c.message };
        trail.debug(format!("privacyIDEA challenges \"{}\"{}", call.user, if c.poll { " (push)" } else { "" }));
        Decision::challenge(state, vec![cut(&printable(text, 253), 253).to_string()])
    }

    /// Polls a push until it is answered or `poll_wait` has passed; then
    /// privacyIDEA's final check decides (its policies apply to that step).
    fn wait_for_push(&self, call: &Call, c: &Challenge, trail: &mut Trail) -> Ending {
        let messages = &self.cfg.messages;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.pi.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            trail.warn(format!(
                "{} logins already wait for a push: \"{}\" gets the challenge instead",
                self.pi.max_waiting, call.user
            ));
            let prompt = Challenge { message: messages.push_prompt_plain(), ..c.clone() };
            return self.challenge(call, &prompt, trail).into();
        }
        let _slot = Slot(&self.waiting);
        // The start-up check counts one `timeout` for the first check; when that took
        // longer (its first URL did not answer and the next did), the wait is shorter
        // by as much, so that the final check still ends within `longest`.
        let deadline =
            (Instant::now() + self.pi.poll_wait).min(call.started + self.pi.poll_wait + self.pi.client.timeout);
        let wait = deadline.saturating_duration_since(Instant::now());
        trail.debug(format!("waiting up to {} s for \"{}\" to approve the push", wait.as_secs(), call.user));
        loop {
            if Instant::now() >= deadline {
                // A first check that used the whole wait up (its servers failed over).
                break;
            }
            match Self::noted(self.client.poll(&c.transaction_id), trail) {
                Ok(PollStatus::Accepted) => {
                    let answer = self.check(call, "", Some(&c.transaction_id), trail);
                    let mut ending = self.finish(call, answer, trail);
                    if ending.decision.tally == crate::stats::Tally::Accept {
                        ending.decision.tally = crate::stats::Tally::PushApproved;
                    }
                    return ending;
                }
                Ok(PollStatus::Declined) => {
                    trail.info(format!("rejected: \"{}\" declined the push", call.user));
                    return Decision::reject(Cause::PushDenied, messages.push_denied.clone()).into();
                }
                Ok(PollStatus::Pending) => {}
                Err(e) => return self.call_failed(call.user, e, trail).into(),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(self.pi.poll_interval).max(Duration::from_millis(10)));
        }
        if c.interactive {
            trail.info(format!("\"{}\" did not approve the push in time: asking for a code", call.user));
            return self.challenge(call, c, trail).into();
        }
        trail.info(format!("rejected: \"{}\" did not approve the push in time", call.user));
        Decision::reject(Cause::PushTimeout, messages.push_timeout.clone()).into()
    }

    fn call_failed(&self, user: &str, e: CallError, trail: &mut Trail) -> Decision {
        let messages = &self.cfg.messages;
        match e {
            CallError::Unavailable(why) => {
                trail.error(format!("privacyIDEA is unavailable for \"{user}\": {why}"));
                Decision::refuse(Outcome::Fail, messages.internal.clone())
            }
            CallError::Answer(AnswerError::Refused { code, message }) => {
                let what = if code == USER_NOT_FOUND { " (user not found)" } else { "" };
                trail.info(format!(
                    "rejected: privacyIDEA refused \"{user}\"{what}: {}",
                    AnswerError::Refused { code, message }
                ));
                Decision::reject(Cause::Denied, messages.rejected.clone())
            }
            CallError::Answer(other) => {
                trail.error(format!("rejected \"{user}\": privacyIDEA's answer cannot be used: {other}"));
                Decision::reject(Cause::Unavailable, messages.internal.clone())
            }
        }
    }
}

/// Who a call is about.
struct Call<'a> {
    user: &'a str,
    realm: Option<&'a str>,
    /// The NAS's address, sent as `client`.
    client: &'a str,
    binding: Binding<'a>,
    /// When the login reached the module: the push wait ends in time for the
    /// whole login to stay within `longest`, however long the first check took.
    started: Instant,
}

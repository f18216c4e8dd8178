//! The decisions of the Duo backend (backend = duo): after FreeRADIUS's first
//! factor (modes password+otp, auto and push) or alone (mode otp), Duo's Auth API
//! decides. `/preauth` first: `allow` (a bypass user) accepts, `deny` rejects,
//! `enroll` (a user Duo does not know) follows `duo.enroll`, `auth` goes on to
//! `/auth`: a Duo passcode typed where a code goes, or (`factors.rs`) a push
//! to the Duo app, a phone call or SMS passcodes, with their challenge round;
//! in `auto` with the password alone, a menu of the user's devices (`menu.rs`).
//! A NAS's re-send of a login in progress joins it, on this server or, with
//! `state_store = redis`, on another server of the farm (`joining/farm.rs`).
//!
//! Duo's reasons ("Incorrect passcode", status `fraud`) go to the log; the
//! user sees the configured messages. Neither password nor passcode enters a
//! log line.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::joining::farm::{Bounds, Claimed, Farm, Published, Turn};
use super::joining::{login_key, Entry, InProgress, Joiner};
use super::{AuthenticateInput, AuthenticateOutput, AuthorizeInput, AuthorizeOutput, Decision, Outcome, Trail};
use crate::backend::duo::secret;
use crate::backend::duo::{Answer, CallError, DuoApi, DuoConfig, Enroll, HttpDuo, SecretKey};
use crate::challenge::StateKey;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, Failmode, Mode, StoreChoice};
use crate::factor::password;
use crate::stats::Cause;
use crate::store::state_store::StateStore;

mod factors;
mod menu;
use crate::text::printable;

/// What may stand in place of the passcode (password+otp): Duo's factors that
/// need no typing, a push to the Duo app (first: auto's "password," asks for it)
/// and a phone call.
const OUT_OF_BAND: [&str; 2] = ["push", "phone"];
/// In place of the passcode: send new passcodes by SMS.
const SMS_WORD: &str = "sms";

/// What the login asks Duo to check.
enum Factor {
    Passcode(String),
    /// `push` or `phone`: sent asynchronously, then `/auth_status`.
    OutOfBand(&'static str),
    /// New passcodes by SMS, one of which the user types next.
    Sms,
    /// auto with the password alone: a challenge for a passcode or a factor word.
    Ask,
}

pub struct DuoEngine {
    name: String,
    cfg: Config,
    duo: DuoConfig,
    api: Box<dyn DuoApi>,
    /// Logins waiting for a push at once.
    waiting: AtomicUsize,
    /// What the `/check` at start-up found worth a warning.
    warnings: Vec<String>,
    /// With `approval = challenge`: the key sealing the States, and the answered ones.
    key: Option<StateKey>,
    used: Option<Box<dyn StateStore>>,
    clock: Arc<dyn Clock>,
    /// auto: what after the separator counts as a passcode.
    auto_code: regex::Regex,
    /// Logins being decided now, by a hash of what makes them the same login.
    in_progress: InProgress<Decision>,
    /// With a store shared by a farm: the keys that join re-sends across it.
    farm: Option<Farm>,
}

/// Keeps the count of waiting logins right however the wait ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Who a call is about.
struct Call<'a> {
    user: &'a str,
    /// The user's address (Calling-Station-Id when it is one), Duo's `ipaddr`.
    ipaddr: Option<String>,
    nas_name: &'a str,
    /// What a challenge is bound to: the client's address, NAS-IP-Address and NAS-Identifier.
    nas: &'a str,
    /// The login as claimed in the farm's store, where the re-sends on other
    /// servers read what it comes to.
    shared: Option<&'a Claimed<'a>>,
    /// In an answer round: where the dialogue stands (from its State).
    dialogue: Option<factors::Round>,
}

impl DuoEngine {
    /// Reads the secret key, builds the client and asks Duo's `/check`: keys Duo
    /// refuses stop the start (naming the item); Duo unreachable is a warning.
    pub fn new(name: &str, cfg: Config, clock: Arc<dyn Clock>) -> Result<DuoEngine, ConfigError> {
        let duo = cfg.duo.clone().ok_or(ConfigError::new("backend", "not duo"))?;
        let skey = match &duo.secret_key {
            SecretKey::Inline(key) => key.clone(),
            SecretKey::File(path) => secret::read(path).map_err(|why| ConfigError::new("duo.secret_key_file", why))?,
        };
        let ca = (duo.ca_file.as_deref(), duo.ca_path.as_deref());
        let client = HttpDuo::new(&duo.api_host, &duo.integration_key, &skey, duo.signature_version, duo.timeout, ca)
            .map_err(|e| {
            let item = match e.field {
                "ca_file" => "duo.ca_file",
                "ca_path" => "duo.ca_path",
                _ => "duo.api_host",
            };
            ConfigError::new(item, e.message)
        })?;
        let mut engine = Self::with_api(name, cfg, clock, Box::new(client))?;
        engine.check_keys()?;
        Ok(engine)
    }

    /// As [`DuoEngine::new`], with Duo's API given and not checked (tests use a fake).
    pub fn with_api(
        name: &str,
        cfg: Config,
        clock: Arc<dyn Clock>,
        api: Box<dyn DuoApi>,
    ) -> Result<DuoEngine, ConfigError> {
        let duo = cfg.duo.clone().ok_or(ConfigError::new("backend", "not duo"))?;
        let counters = super::counters_of(name, &cfg);
        let api = match counters {
            Some(counters) => Box::new(super::metered::Metered::wrap(api, crate::stats::Call::Duo, counters)),
            None => api,
        };
        // The State key and the answered States, only where the push challenges.
        let (key, used) = match &cfg.challenge {
            Some(c) => (
                Some(StateKey::load_or_create(&c.state_key).map_err(|m| ConfigError::new("state_key", m))?),
                Some(super::open_store(&cfg, counters)?),
            ),
            None => (None, None),
        };
        let auto_code = crate::config::auto_code(&cfg.auto_code_pattern)?;
        let farm = key.as_ref().filter(|_| matches!(cfg.store, StoreChoice::Redis(_))).map(Farm::new);
        Ok(DuoEngine {
            farm,
            auto_code,
            key,
            used,
            clock,
            name: name.to_string(),
            cfg,
            duo,
            api,
            waiting: AtomicUsize::new(0),
            warnings: vec![],
            in_progress: InProgress::default(),
        })
    }

    /// `/auth/v2/check`: are the keys and the signature right?
    fn check_keys(&mut self) -> Result<(), ConfigError> {
        match self.api.call("GET", "/auth/v2/check", &[]) {
            Ok(_) => Ok(()),
            Err(CallError::Refused { status, code, message }) => {
                // Duo's codes: 40102 unknown integration key, 40103 bad signature.
                let item = match code {
                    40102 => "duo.integration_key",
                    40103 | 40104 => self.secret_key_item(),
                    _ => "duo.api_host",
                };
                Err(ConfigError::new(
                    item,
                    format!("Duo's /auth/v2/check refuses the keys (HTTP {status}, code {code}): {message}"),
                ))
            }
            Err(other) => {
                self.warnings.push(format!("duo: /auth/v2/check at start-up failed, keys not verified: {other}"));
                Ok(())
            }
        }
    }

    /// The item the secret key came from, for the errors about it.
    fn secret_key_item(&self) -> &'static str {
        match self.duo.secret_key {
            SecretKey::Inline(_) => "duo.secret_key",
            SecretKey::File(_) => "duo.secret_key_file",
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Re-sends waiting for a login in progress (for the tests).
    #[cfg(test)]
    pub(super) fn joiners(&self) -> usize {
        self.in_progress.joiners()
    }

    /// Shares `store` with the other servers of a farm (for the tests: Redis's stand-in).
    #[cfg(test)]
    pub(super) fn in_farm(mut self, store: Box<dyn StateStore>) -> DuoEngine {
        self.farm = self.key.as_ref().map(Farm::new);
        self.used = Some(store);
        self
    }

    pub fn startup_warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    pub fn authorize(&self, input: AuthorizeInput<'_>) -> AuthorizeOutput {
        let mut trail = Trail { quiet: input.quiet, ..Trail::default() };
        let mut out = AuthorizeOutput::default();
        if super::remote_authorize::user_of_request(&self.cfg, &self.name, &input, &mut out, &mut trail) {
            // The answer to a push challenge holds no password to split.
            let answers = input.has_state && self.key.is_some();
            if self.cfg.mode == Mode::Auto && !answers {
                self.split_auto(&input, &mut out, &mut trail);
            } else if self.cfg.mode == Mode::PasswordOtp && !answers && !self.split(&input, &mut out, &mut trail) {
                out.log = trail.log;
                return out;
            }
            out.set_auth_type = input.auth_type.is_none();
            out.outcome = Some(Outcome::Updated);
        }
        out.log = trail.log;
        out
    }

    /// password+otp: the password part for the first factor, the passcode kept
    /// for authenticate. False when refused (`out` says why).
    fn split(&self, input: &AuthorizeInput<'_>, out: &mut AuthorizeOutput, trail: &mut Trail) -> bool {
        let field = input.password.map(std::str::from_utf8);
        let why = match field {
            Some(Ok(text)) => match password::split(text, &self.cfg.split) {
                Ok(parts) => {
                    trail.debug("split User-Password into password and Duo passcode");
                    out.password = Some(parts.password.to_string());
                    out.stashed_code = Some(parts.otp.to_string());
                    return true;
                }
                Err(why) => format!("User-Password: {why}"),
            },
            Some(Err(_)) => "User-Password is not valid UTF-8, so it is not split into password and code".into(),
            None => "the request has no User-Password".into(),
        };
        trail.info(format!("rejected \"{}\": {why}", super::post_auth::shown(input.user_name)));
        out.outcome = Some(Outcome::Reject);
        out.tally = crate::stats::Tally::Reject { cause: Cause::Malformed, locks: false };
        out.reply_message = Some(self.cfg.messages.no_code.clone());
        false
    }

    /// auto: a field that ends in a passcode (`auto_code_pattern`) or a factor word
    /// is split as in password+otp; otherwise it is the password alone, and the
    /// passcode or the word is asked for in a challenge.
    fn split_auto(&self, input: &AuthorizeInput<'_>, out: &mut AuthorizeOutput, trail: &mut Trail) {
        let Some(Ok(field)) = input.password.map(std::str::from_utf8) else { return };
        let parts = match password::split(field, &self.cfg.split) {
            Ok(parts) => parts,
            // "password," (the separator, nothing after it): a push, as the local engine reads it.
            Err(password::SplitError::EmptyOtp) => {
                let sep = self.cfg.split.separator.as_str();
                let bare = match self.cfg.split.otp_position {
                    password::OtpPosition::Last => field.strip_suffix(sep),
                    password::OtpPosition::First => field.strip_prefix(sep),
                };
                if let Some(bare) = bare {
                    trail.debug("User-Password ends with the separator alone: a Duo push is asked for");
                    out.password = Some(bare.to_string());
                    out.stashed_code = Some(OUT_OF_BAND[0].to_string());
                }
                return;
            }
            Err(_) => {
                trail.debug("User-Password holds the password alone: the Duo factor is asked for next");
                return;
            }
        };
        let word = OUT_OF_BAND.iter().chain([&SMS_WORD]).any(|w| parts.otp.eq_ignore_ascii_case(w));
        if word || self.auto_code.is_match(parts.otp) {
            trail.debug("split User-Password into password and Duo passcode or factor");
            out.password = Some(parts.password.to_string());
            out.stashed_code = Some(parts.otp.to_string());
        }
    }

    pub fn authenticate(&self, input: AuthenticateInput) -> AuthenticateOutput {
        let mut trail = Trail::default();
        let decision = self.authenticate_inner(&input, &mut trail);
        AuthenticateOutput {
            outcome: Some(decision.outcome),
            reply_messages: decision.messages,
            challenge_state: decision.state,
            reply_attributes: vec![],
            split: None,
            tally: decision.tally,
            log: trail.log,
        }
    }

    fn authenticate_inner(&self, input: &AuthenticateInput, trail: &mut Trail) -> Decision {
        let messages = &self.cfg.messages;
        let user = match super::parse_user_name(input.user_name, &self.cfg.realm) {
            Ok(parsed) => parsed.user.to_owned(),
            Err(why) => {
                trail.info(format!("rejected: {why}"));
                return Decision::refuse(Outcome::Invalid, messages.bad_user.clone());
            }
        };
        let call = Call {
            user: &user,
            ipaddr: station_address(&input.session),
            nas_name: &input.nas_name,
            nas: &input.nas,
            shared: None,
            dialogue: None,
        };
        // The answer to a push challenge (an inner EAP session's State is eap's, not ours).
        if let Some(state) = input.state.filter(|_| !input.inner_eap()) {
            return self.answer(&call, state, input.password.unwrap_or_default(), trail);
        }
        let factor = match self.cfg.mode {
            Mode::Push => Factor::OutOfBand("push"),
            // The password alone: the first factor accepted it, now ask what comes second.
            Mode::Auto if input.stashed_code.is_none() => Factor::Ask,
            Mode::PasswordOtp | Mode::Auto => match &input.stashed_code {
                Some(code) if code.eq_ignore_ascii_case(SMS_WORD) => Factor::Sms,
                Some(code) => match OUT_OF_BAND.iter().find(|word| code.eq_ignore_ascii_case(word)) {
                    Some(word) => Factor::OutOfBand(word),
                    None => Factor::Passcode(code.clone()),
                },
                None => {
                    trail.error(
                        "no passcode was split off in authorize: list this module in the authorize section \
                         before the first factor (see sites-available/mfa)",
                    );
                    return Decision::refuse(Outcome::Fail, messages.internal.clone());
                }
            },
            _ => match input.password.map(std::str::from_utf8) {
                Some(Ok(code)) if !code.is_empty() => Factor::Passcode(code.to_string()),
                _ => {
                    trail.info(format!("rejected: \"{user}\" sent no passcode (User-Password is missing or empty)"));
                    return Decision::reject(Cause::WrongCode, messages.wrong_code.clone());
                }
            },
        };
        let key = login_key(&[
            user.as_bytes(),
            input.nas.as_bytes(),
            input.session.as_bytes(),
            input.password.unwrap_or_default(),
            match &factor {
                Factor::Passcode(code) => code.as_bytes(),
                Factor::OutOfBand(word) => word.as_bytes(),
                Factor::Sms => SMS_WORD.as_bytes(),
                Factor::Ask => b"",
            },
        ]);
        match self.in_progress.enter(key) {
            Entry::Joined(other) => self.join(&call, other, trail),
            Entry::First(first) => first.end(self.decide_in_farm(&call, factor, &key, trail)),
        }
    }

    /// How long the store keeps a login's claim and the push's txid: longer than
    /// the login may take, so that a re-send never claims it a second time.
    /// A re-send itself waits at most `duo.longest`, which ends before the
    /// server's `max_request_time`.
    fn claim_ttl(&self) -> u64 {
        (self.duo.wait + 4 * self.duo.timeout).as_secs() + 1
    }

    /// The farm's bounds: the claim's life, and a re-send's wait.
    fn bounds(&self) -> Bounds {
        Bounds { claim: self.claim_ttl(), wait: self.duo.longest }
    }

    /// With a store shared by a farm: the first server to see the login decides
    /// it, publishing the push's txid and the ending; a re-send to another
    /// server joins it there. Alone: decides.
    fn decide_in_farm(&self, call: &Call, factor: Factor, key: &[u8; 32], trail: &mut Trail) -> Decision {
        let (Some(farm), Some(store)) = (&self.farm, self.used.as_deref()) else {
            return self.decide(call, factor, trail);
        };
        // The menu sends nothing to the user: nothing to join.
        if matches!(factor, Factor::Ask) {
            return self.decide(call, factor, trail);
        }
        let login = farm.login(&self.name, key);
        let until = Instant::now() + self.duo.longest;
        match farm.enter(store, login, call.user, self.bounds(), &*self.clock, trail) {
            Turn::First(claimed) => {
                let call = Call { ipaddr: call.ipaddr.clone(), shared: Some(&claimed), ..*call };
                let decision = self.decide(&call, factor, trail);
                claimed.end(&decision, self.clock.now(), trail);
                decision
            }
            Turn::Joined(Published::Ending(decision)) => decision.joined(),
            // A push waiting for the user: polled here within this server's bounds.
            Turn::Joined(Published::Txid(txid)) => self.poll_joined(call, &txid, until, trail),
            Turn::Refused => Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()),
        }
    }

    /// A NAS's re-send of a login being decided (a new RADIUS ID: same user, NAS,
    /// station and text) waits for its decision instead of sending the passcode
    /// (used up by then) or the push again.
    fn join(&self, call: &Call, other: Joiner<Decision>, trail: &mut Trail) -> Decision {
        trail.debug(format!("the same login of \"{}\" is in progress: waiting for its answer", call.user));
        other.wait(self.duo.longest).map(Decision::joined).unwrap_or_else(|| {
            trail.error(format!("the login of \"{}\" this one joined did not end in time", call.user));
            Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone())
        })
    }

    /// `/preauth`, then the passcode, the push or the phone call.
    fn decide(&self, call: &Call, factor: Factor, trail: &mut Trail) -> Decision {
        let devices = match self.preauth(call, trail) {
            Ok(Ok(answer)) => answer,
            Ok(Err(decision)) => return decision,
            Err(e) if matches!(factor, Factor::OutOfBand(_)) => return self.push_call_failed(call, e, trail),
            Err(e) => return self.call_failed(call, e, trail),
        };
        match factor {
            Factor::Passcode(code) => self.passcode(call, &code, trail),
            Factor::OutOfBand(word) => self.push(call, word, "auto", trail),
            Factor::Sms => self.sms(call, &devices, "auto", trail),
            Factor::Ask => self.ask(call, &devices, trail),
        }
    }

    /// The parameters every call about the user has.
    fn about<'a>(call: &'a Call) -> Vec<(&'static str, &'a str)> {
        let mut params = vec![("username", call.user)];
        if let Some(ip) = &call.ipaddr {
            params.push(("ipaddr", ip.as_str()));
        }
        params
    }

    /// `/preauth`: a decision already (allow, deny, enroll), or its answer (with the
    /// user's devices) to go on to `/auth`.
    fn preauth(&self, call: &Call, trail: &mut Trail) -> Result<Result<Answer, Decision>, CallError> {
        let answer = self.api.call("POST", "/auth/v2/preauth", &Self::about(call))?;
        let user = call.user;
        let messages = &self.cfg.messages;
        Ok(Err(match word(&answer, "result") {
            "auth" => return Ok(Ok(answer)),
            "allow" => {
                trail.info(format!("accepted \"{user}\" without a second factor: Duo's preauth allows (bypass)"));
                Decision::accept()
            }
            "deny" => {
                trail.info(format!("rejected: Duo denies \"{user}\": {}", reason(&answer)));
                Decision::reject(Cause::Denied, messages.rejected.clone())
            }
            "enroll" => match self.duo.enroll {
                Enroll::Reject => {
                    trail.info(format!("rejected: \"{user}\" is not enrolled in Duo (duo.enroll = reject)"));
                    Decision::reject(Cause::NoToken, messages.no_token.clone())
                }
                Enroll::Allow => {
                    trail.warn(format!(
                        "accepted \"{user}\" on the first factor alone: not enrolled in Duo (duo.enroll = allow)"
                    ));
                    Decision::accept()
                }
            },
            other => {
                trail.error(format!(
                    "rejected \"{user}\": Duo's preauth result \"{}\" is unknown",
                    printable(other, 40)
                ));
                Decision::reject(Cause::Unavailable, messages.internal.clone())
            }
        }))
    }

    /// `/auth` with factor passcode: Duo checks it (and refuses a used one).
    fn passcode(&self, call: &Call, code: &str, trail: &mut Trail) -> Decision {
        let mut params = Self::about(call);
        params.extend([("factor", "passcode"), ("passcode", code)]);
        match self.api.call("POST", "/auth/v2/auth", &params) {
            Ok(answer) if word(&answer, "result") == "allow" => {
                trail.debug(format!("Duo accepts the passcode of \"{}\"", call.user));
                Decision::accept()
            }
            Ok(answer) => {
                trail.info(format!("rejected: Duo refuses the passcode of \"{}\": {}", call.user, reason(&answer)));
                Decision::reject(Cause::WrongCode, self.cfg.messages.wrong_code.clone())
            }
            Err(e) => self.call_failed(call, e, trail),
        }
    }

    /// A call of a login whose factor is not a push or a phone call that gave no
    /// answer to act on: counted as `unavailable` (no push was sent).
    fn call_failed(&self, call: &Call, e: CallError, trail: &mut Trail) -> Decision {
        self.failed(call, e, Cause::Unavailable, trail)
    }

    /// As [`DuoEngine::call_failed`], for a push or a phone call: counted as a
    /// push that failed, as the local push provider's are.
    fn push_call_failed(&self, call: &Call, e: CallError, trail: &mut Trail) -> Decision {
        self.failed(call, e, Cause::PushFailed, trail)
    }

    /// Duo unavailable follows failmode (a Reject counted under `unavailable_cause`);
    /// a refusal or a rate limit never does.
    fn failed(&self, call: &Call, e: CallError, unavailable_cause: Cause, trail: &mut Trail) -> Decision {
        let messages = &self.cfg.messages;
        let user = call.user;
        match e {
            CallError::TimedOut => {
                self.failed(call, CallError::Unavailable("no answer in time".into()), unavailable_cause, trail)
            }
            CallError::Unavailable(why) => match self.duo.failmode {
                Failmode::Secure => {
                    trail.error(format!("rejected: \"{user}\": Duo is unavailable ({why}); duo.failmode = secure"));
                    Decision::reject(unavailable_cause, messages.push_unavailable.clone())
                }
                Failmode::Safe => {
                    trail.warn(format!(
                        "accepted \"{user}\" on the first factor alone: Duo is unavailable ({why}); duo.failmode = safe"
                    ));
                    Decision::accept_failsafe()
                }
            },
            // Never failmode: a flood that makes Duo answer 429 must not open the door.
            CallError::RateLimited | CallError::BackingOff => {
                trail.error(format!("refused \"{user}\": {e}"));
                Decision::refuse(Outcome::Fail, messages.internal.clone())
            }
            // Whoever refused (Duo, or a relay or proxy in the way): never failmode.
            CallError::Refused { .. } | CallError::NotDuo { .. } => {
                trail.error(format!("rejected \"{user}\": {e}"));
                Decision::reject(Cause::Unavailable, messages.internal.clone())
            }
        }
    }
}

/// A text field of Duo's answer, or "".
fn word<'a>(answer: &'a Answer, key: &str) -> &'a str {
    answer.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

/// Duo's status and its message, fit for a log line.
fn reason(answer: &Answer) -> String {
    let status = printable(word(answer, "status"), 40);
    let message = printable(word(answer, "status_msg"), 200);
    match (status.is_empty(), message.is_empty()) {
        (false, false) => format!("{status} ({message})"),
        (false, true) => status,
        (true, false) => message,
        (true, true) => "no reason given".into(),
    }
}

/// The Calling-Station-Id of `session` ("station|port") when it is an IP address.
fn station_address(session: &str) -> Option<String> {
    let station = session.rsplit_once('|').map_or(session, |(s, _)| s).trim();
    station.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_station_is_an_address_or_nothing() {
        assert_eq!(station_address("192.0.2.7|5"), Some("192.0.2.7".into()));
        assert_eq!(station_address("2001:db8::1|"), Some("2001:db8::1".into()));
        assert_eq!(station_address("00-11-22-33-44-55|1"), None);
        assert_eq!(station_address("|"), None);
    }
}

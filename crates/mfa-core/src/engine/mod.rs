//! The decisions of the module: what authorize and authenticate do with a
//! request, as plain data in and out. The FFI layer reads the attributes,
//! calls these, and writes back what they return.
//!
//! Secrets (the password, the code, token seeds) never enter a log line.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use crate::challenge::StateKey;
use crate::channel::gateway::{GatewayConfig, HttpGateway, Sender};
use crate::channel::smtp::{SmtpConfig, SmtpSender};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, Mode, StoreChoice};
use crate::factor::password;
use crate::factor::verify::Windows;
use crate::identity::realm;
use crate::identity::usermap::UserMap;
use crate::stats::{Cause, Counters, Tally};
use crate::store::call_budget::CallBudget;
use crate::store::journal::{JournalOptions, LockState};
use crate::store::redis::RedisStore;
use crate::store::reload::{ReloadEvent, Reloading, CHECK_INTERVAL};
use crate::store::state_store::{LocalStore, StateStore};
use crate::store::tokens::TokenDb;

mod codes;
mod dialogue;
mod duo;
mod eap;
mod gates;
mod joining;
mod limits;
mod metered;
mod otp_or_push;
pub mod post_auth;
mod privacyidea;
mod push;
mod remote_authorize;
mod warnings;

pub use duo::DuoEngine;
pub use eap::LateSplit;
pub use privacyidea::PiEngine;

use codes::Given;
use push::Pusher;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub text: String,
}

/// The module's return code, as FreeRADIUS's rlm_rcode_t names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Updated,
    Noop,
    Reject,
    Userlock,
    Invalid,
    Fail,
    /// Answer with Access-Challenge (FreeRADIUS: HANDLED with the reply code set).
    Challenge,
}

impl Outcome {
    /// Every outcome, in a fixed order (the farm's published endings number them).
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Updated,
        Outcome::Noop,
        Outcome::Reject,
        Outcome::Userlock,
        Outcome::Invalid,
        Outcome::Fail,
        Outcome::Challenge,
    ];
}

/// What authorize reads from the request.
pub struct AuthorizeInput<'a> {
    pub user_name: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    /// The name of `control:Auth-Type`, if policy already set one.
    pub auth_type: Option<&'a str>,
    /// Whether the request carries a State (the answer to a challenge).
    pub has_state: bool,
    /// Whether the request carries an EAP-Message (802.1X: the eap module's).
    pub eap: bool,
    /// The server prints no debug lines for this request: the engine builds none.
    pub quiet: bool,
}

/// What authorize asks the FFI layer to do. Holds the code: no Debug.
#[derive(Default)]
pub struct AuthorizeOutput {
    pub outcome: Option<Outcome>,
    pub stripped_user_name: Option<String>,
    pub realm: Option<String>,
    pub set_auth_type: bool,
    /// The password part, to replace User-Password for the first factor.
    pub password: Option<String>,
    /// The code part, kept with the request for authenticate.
    pub stashed_code: Option<String>,
    pub reply_message: Option<String>,
    /// An EAP request without the typed text (EAP-GTC sends it later): authenticate
    /// is to split "password,code" itself (kept with the request by the FFI layer).
    pub deferred: bool,
    /// Mode otp-or-push: authorize verified a code typed alone; Auth-Type := Accept,
    /// and the request counts as verified by the module (the post-auth check).
    pub accept: bool,
    /// What the answer counts as (rlm_mfa_*_total); see [`tally_of`].
    pub tally: Tally,
    pub log: Vec<LogLine>,
}

impl AuthorizeOutput {
    /// What this answer counts as: every refusal counted under one cause.
    pub fn tally(&self) -> Tally {
        tally_of(self.outcome, self.tally)
    }
}

pub use crate::factor::mschap::MsChap2;

/// A CHAP answer (RFC 1994): MD5(ident, code, challenge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chap {
    pub ident: u8,
    pub response: [u8; 16],
    /// CHAP-Challenge, or the request authenticator when the NAS sent none.
    pub challenge: Vec<u8>,
}

impl Chap {
    /// From CHAP-Password's 17 bytes; None when it has another length.
    pub fn from_attribute(chap_password: &[u8], challenge: &[u8]) -> Option<Chap> {
        let (&ident, response) = chap_password.split_first()?;
        Some(Chap { ident, response: response.try_into().ok()?, challenge: challenge.to_vec() })
    }
}

#[derive(Default)]
pub struct AuthenticateInput<'a> {
    pub user_name: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub chap: Option<Chap>,
    /// MS-CHAP-Challenge and MS-CHAP2-Response (otp mode: the code is the password).
    pub mschap2: Option<MsChap2>,
    /// The State attribute, in the answer to a challenge.
    pub state: Option<&'a [u8]>,
    /// Who asks: the client's address, NAS-Identifier and NAS-IP-Address.
    pub nas: String,
    /// For the push message: the client's shortname and the NAS's name.
    pub client: String,
    pub nas_name: String,
    /// What tells one login from another at the same NAS: Calling-Station-Id and NAS-Port.
    pub session: String,
    /// The NAS's address (privacyIDEA's `client`).
    pub nas_address: String,
    pub stashed_code: Option<String>,
    /// The request carries an EAP-Message.
    pub eap: bool,
    /// The request runs in an inner-tunnel virtual server (EAP-TTLS, PEAP).
    pub inner: bool,
    /// authorize saw this request without the typed text (EAP-GTC), so nothing was
    /// split off: User-Password now holds "password,code".
    pub deferred_split: bool,
    /// The server prints no debug lines for this request: the engine builds none.
    pub quiet: bool,
}

impl AuthenticateInput<'_> {
    /// An inner EAP conversation (PEAP, TTLS/EAP-GTC) calls the module: an inner-tunnel
    /// request with an EAP-Message. Its State is that session's, not an answer to one of
    /// the module's challenges. An outer request's EAP-Message is the client's to forge:
    /// there a State stays the module's or is refused.
    pub(super) fn inner_eap(&self) -> bool {
        self.eap && self.inner
    }
}

#[derive(Debug, Default)]
pub struct AuthenticateOutput {
    pub outcome: Option<Outcome>,
    /// One Reply-Message each, at most 253 bytes.
    pub reply_messages: Vec<String>,
    /// With `Outcome::Challenge`: the State to send.
    pub challenge_state: Option<Vec<u8>>,
    /// With `Outcome::Ok`: the `reply` rules' attributes (name, value).
    pub reply_attributes: Vec<(String, String)>,
    /// With `Outcome::Updated`: "password,code" split here (EAP-GTC), for the first
    /// factor that follows and the module's next call.
    pub split: Option<LateSplit>,
    /// What the answer counts as (rlm_mfa_*_total); see [`tally_of`].
    pub tally: Tally,
    pub log: Vec<LogLine>,
}

impl AuthenticateOutput {
    /// What this answer counts as: every refusal counted under one cause.
    pub fn tally(&self) -> Tally {
        tally_of(self.outcome, self.tally)
    }
}

/// What an answer counts as: the tally its decision carries, and for a refusal that
/// carries none, the cause its return code stands for. So no refusal goes uncounted,
/// and none is counted twice.
pub fn tally_of(outcome: Option<Outcome>, tally: Tally) -> Tally {
    match (outcome, tally) {
        (
            Some(Outcome::Reject | Outcome::Userlock | Outcome::Invalid | Outcome::Fail) | None,
            Tally::Reject { .. } | Tally::JoinedReject { .. },
        ) => tally,
        (Some(Outcome::Reject | Outcome::Userlock | Outcome::Invalid | Outcome::Fail) | None, _) => {
            Tally::Reject { cause: default_cause(outcome), locks: false }
        }
        (Some(Outcome::Ok), Tally::Accept | Tally::PushApproved | Tally::FailsafeAccept) => tally,
        (Some(Outcome::Ok), _) => Tally::Accept,
        (Some(Outcome::Challenge), Tally::ChallengeLocks) => tally,
        (Some(Outcome::Challenge), _) => Tally::Challenge,
        (Some(Outcome::Updated | Outcome::Noop), _) => Tally::Nothing,
    }
}

/// The cause a refusal that names none is counted under, by its return code.
fn default_cause(outcome: Option<Outcome>) -> Cause {
    match outcome {
        Some(Outcome::Userlock) => Cause::LockedOut,
        Some(Outcome::Invalid) => Cause::Malformed,
        Some(Outcome::Reject) => Cause::Denied,
        _ => Cause::Unavailable,
    }
}

/// Where a request comes from: what a challenge is bound to and a push message names.
pub(crate) struct Origin<'a> {
    /// The client's address, NAS-IP-Address and NAS-Identifier.
    pub nas: &'a str,
    /// The client's shortname.
    pub client: &'a str,
    /// NAS-Identifier, else NAS-IP-Address, else the address.
    pub nas_name: &'a str,
    /// Calling-Station-Id and NAS-Port.
    pub session: &'a str,
}

/// How authenticate ends.
#[derive(Clone)]
struct Decision {
    outcome: Outcome,
    messages: Vec<String>,
    state: Option<Vec<u8>>,
    /// Reply attributes the check itself gives (MS-CHAP2-Success and the MPPE keys).
    attributes: Vec<(String, String)>,
    /// What it counts as (the counters): the cause of a refusal travels with it.
    tally: Tally,
}

impl Decision {
    /// The same answer for a re-send that joined this login (on this server or
    /// another of the farm): counted as its own request's accept or refusal, but
    /// not as a second push ended (approved, denied, timed out or failed) or a
    /// second lockout.
    fn joined(mut self) -> Decision {
        self.tally = match self.tally {
            Tally::PushApproved | Tally::FailsafeAccept => Tally::Accept,
            Tally::Reject { cause, .. } | Tally::JoinedReject { cause } => Tally::JoinedReject { cause },
            Tally::ChallengeLocks => Tally::Challenge,
            other => other,
        };
        self
    }

    fn accept() -> Decision {
        Decision { outcome: Outcome::Ok, messages: vec![], state: None, attributes: vec![], tally: Tally::Accept }
    }
    /// An accept after the user approved a push.
    fn accept_push() -> Decision {
        Decision { tally: Tally::PushApproved, ..Decision::accept() }
    }
    /// An accept on the first factor alone: the provider failed and `failmode = safe`.
    fn accept_failsafe() -> Decision {
        Decision { tally: Tally::FailsafeAccept, ..Decision::accept() }
    }
    /// A refusal with a return code other than Reject (Userlock, Invalid, Fail), counted
    /// under the cause the code stands for; a Reject says its cause ([`Decision::reject`]).
    fn refuse(outcome: Outcome, message: String) -> Decision {
        let tally = tally_of(Some(outcome), Tally::Nothing);
        Decision { outcome, messages: vec![message], state: None, attributes: vec![], tally }
    }
    /// Reject, counted under `cause`.
    fn reject(cause: Cause, message: String) -> Decision {
        let tally = Tally::Reject { cause, locks: false };
        Decision { outcome: Outcome::Reject, messages: vec![message], state: None, attributes: vec![], tally }
    }
    /// The failure that locked the user: Userlock, counted as a lockout too.
    fn locks(message: String) -> Decision {
        let tally = Tally::Reject { cause: Cause::LockedOut, locks: true };
        Decision { outcome: Outcome::Userlock, messages: vec![message], state: None, attributes: vec![], tally }
    }
    fn challenge(state: Vec<u8>, messages: Vec<String>) -> Decision {
        Decision {
            outcome: Outcome::Challenge,
            messages,
            state: Some(state),
            attributes: vec![],
            tally: Tally::Challenge,
        }
    }
}

/// Collects log lines and the Reply-Message while a decision is made.
#[derive(Default)]
struct Trail {
    log: Vec<LogLine>,
    /// No one reads debug lines (the server's debug output is off): none is kept.
    quiet: bool,
}

impl Trail {
    fn debug(&mut self, text: impl Into<String>) {
        if !self.quiet {
            self.log.push(LogLine { level: Level::Debug, text: text.into() });
        }
    }
    /// A debug line that is formatted only when it will be read.
    fn debug_with(&mut self, text: impl FnOnce() -> String) {
        if !self.quiet {
            self.log.push(LogLine { level: Level::Debug, text: text() });
        }
    }
    fn info(&mut self, text: impl Into<String>) {
        self.log.push(LogLine { level: Level::Info, text: text.into() });
    }
    fn warn(&mut self, text: impl Into<String>) {
        self.log.push(LogLine { level: Level::Warn, text: text.into() });
    }
    fn error(&mut self, text: impl Into<String>) {
        self.log.push(LogLine { level: Level::Error, text: text.into() });
    }
}

/// The names a request resolves to, borrowed from the User-Name but for a lookup
/// name that the user map, the suffix or case changed: resolving allocates nothing
/// for most names (it runs twice per login).
struct Names<'a> {
    /// After realm handling: what Stripped-User-Name gets.
    stripped: &'a str,
    realm: Option<&'a str>,
    /// After the user map and suffix: the token-store name.
    lookup: Cow<'a, str>,
}

/// The parts of the challenge modes.
struct Dialogues {
    key: StateKey,
    /// The key of the correlation codes, derived from `key` once.
    correlation_key: [u8; 32],
    sms: Option<Box<dyn Sender>>,
    email: Option<Box<dyn Sender>>,
}

pub struct Engine {
    name: String,
    cfg: Config,
    clock: Arc<dyn Clock>,
    tokens: Reloading<TokenDb>,
    user_map: Option<Reloading<UserMap>>,
    /// Replay state, lockout and answered States: the engine does not know where.
    store: Box<dyn StateStore>,
    dialogues: Option<Dialogues>,
    pusher: Option<Pusher>,
    /// Keys the push provider's request ids (derived from the State key).
    push_id_key: [u8; 32],
    /// auto mode: what counts as a code.
    auto_code: regex::Regex,
    /// Reply attributes for an accepted login.
    rules: Vec<crate::backend::mapping::Rule>,
    /// One code check at a time per user (see gates.rs).
    gates: gates::UserGates,
}

fn load_tokens(path: &Path) -> Result<TokenDb, String> {
    TokenDb::load(path).map_err(|e| e.to_string())
}

fn load_tokens_ignoring_case(path: &Path) -> Result<TokenDb, String> {
    TokenDb::load(path).and_then(TokenDb::folded).map_err(|e| e.to_string())
}

impl Engine {
    /// Opens the token file, the user map, the state journal and, in the modes
    /// that challenge, the State key and the gateways. A failure names the
    /// configuration item, and FreeRADIUS refuses to start.
    pub fn new(name: &str, cfg: Config, clock: Arc<dyn Clock>) -> Result<Engine, ConfigError> {
        let (sms, email) = senders(&cfg.channels)?;
        let (sms, email) = if cfg.challenge.is_some() { (sms, email) } else { (None, None) };
        Self::with_senders(name, cfg, clock, sms, email)
    }

    /// As [`Engine::new`], with the SMS and e-mail senders given (tests use fakes).
    pub fn with_senders(
        name: &str,
        cfg: Config,
        clock: Arc<dyn Clock>,
        sms: Option<Box<dyn Sender>>,
        email: Option<Box<dyn Sender>>,
    ) -> Result<Engine, ConfigError> {
        // With `stats { file }`: the gateways' and the push provider's calls timed and counted.
        let counters = counters_of(name, &cfg);
        let email_call = match cfg.channels.smtp.as_ref() {
            Some(_) => crate::stats::Call::Smtp,
            None => crate::stats::Call::Gateway,
        };
        let (sms, email) = match counters {
            Some(c) => (
                sms.map(|s| Box::new(metered::Metered::wrap(s, crate::stats::Call::Gateway, c)) as Box<dyn Sender>),
                email.map(|s| Box::new(metered::Metered::wrap(s, email_call, c)) as Box<dyn Sender>),
            ),
            None => (sms, email),
        };
        let load = if cfg.ignore_case { load_tokens_ignoring_case } else { load_tokens };
        let tokens = Reloading::open(&cfg.tokens, load, CHECK_INTERVAL)
            .map_err(|message| ConfigError::new("tokens", message))?;
        let user_map = match &cfg.user_map {
            Some(path) => Some(
                Reloading::open(path, UserMap::load, CHECK_INTERVAL)
                    .map_err(|message| ConfigError::new("user_map", message))?,
            ),
            None => None,
        };
        let store = open_store(&cfg, counters)?;
        store.expect_users(tokens.current().len());
        let dialogues = match &cfg.challenge {
            Some(c) => {
                let key =
                    StateKey::load_or_create(&c.state_key).map_err(|message| ConfigError::new("state_key", message))?;
                Some(Dialogues { correlation_key: key.derive("correlation"), key, sms, email })
            }
            None => None,
        };
        let pusher = match &cfg.push {
            Some(p) => {
                let pusher = Pusher::new(p).map_err(|(item, message)| ConfigError::new(item, message))?;
                Some(match counters {
                    Some(c) => pusher.metered(c),
                    None => pusher,
                })
            }
            None => None,
        };
        let auto_code = crate::config::auto_code(&cfg.auto_code_pattern)?;
        let rules = crate::backend::mapping::compile(&cfg.reply)?;
        // Push always comes with the State key (Config::from_raw); without one, ids
        // need not match another server's, and a key of this process's own does.
        let push_id_key = match &dialogues {
            Some(d) => d.key.derive("push request id"),
            None => push::random_key(),
        };
        Ok(Engine {
            rules,
            auto_code,
            name: name.to_string(),
            cfg,
            clock,
            tokens,
            user_map,
            store,
            dialogues,
            pusher,
            push_id_key,
            gates: gates::UserGates::new(),
        })
    }

    /// Replaces the push provider (tests use a fake one).
    pub fn set_push_provider(&mut self, provider: Box<dyn crate::channel::push::PushProvider>) {
        self.pusher = Some(Pusher::with_provider(provider));
    }

    /// The module instance's name, which is also its Auth-Type.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn store(&self) -> &dyn StateStore {
        &*self.store
    }

    fn tokens(&self, trail: &mut Trail) -> Arc<TokenDb> {
        let (db, event) = self.tokens.get();
        match event {
            Some(ReloadEvent::Reloaded) => {
                trail.info(format!("reloaded {} ({} users)", self.tokens.path().display(), db.len()));
                warnings::weak_secrets(&db).into_iter().for_each(|line| trail.warn(line));
            }
            Some(ReloadEvent::Refused(why)) => {
                trail.error(format!("token file not reloaded, keeping the last good copy: {why}"))
            }
            None => {}
        }
        db
    }

    /// Realm handling, user map and suffix. An error says why the name is unusable.
    fn resolve<'a>(&self, user_name: Option<&'a [u8]>, trail: &mut Trail) -> Result<Names<'a>, &'static str> {
        let parsed = parse_user_name(user_name, &self.cfg.realm)?;
        let mapped = match &self.user_map {
            Some(map) => {
                let (map, event) = map.get();
                if let Some(ReloadEvent::Refused(why)) = event {
                    trail.error(format!("user map not reloaded, keeping the last good copy: {why}"));
                }
                map.get(parsed.user).map(str::to_string)
            }
            None => None,
        };
        if let Some(to) = &mapped {
            trail.debug(format!("user map: \"{}\" is \"{to}\" in the token store", parsed.user));
        }
        let suffix = &self.cfg.user_suffix;
        let lookup = match mapped {
            None if suffix.is_empty() && !self.cfg.ignore_case => Cow::Borrowed(parsed.user),
            mapped => {
                // Built in one allocation (two when case is ignored).
                let base = mapped.as_deref().unwrap_or(parsed.user);
                let mut lookup = String::with_capacity(base.len() + suffix.len());
                lookup.push_str(base);
                lookup.push_str(suffix);
                if self.cfg.ignore_case {
                    lookup = crate::identity::case::fold(&lookup);
                }
                Cow::Owned(lookup)
            }
        };
        Ok(Names { stripped: parsed.user, realm: parsed.realm, lookup })
    }

    fn locked_for(&self, lock: &LockState) -> Option<u64> {
        let now = self.clock.now();
        (lock.locked_until > now).then(|| lock.locked_until - now)
    }

    /// The lockout's words, where a refusal may tell them (see [`Engine::before_password`]).
    fn locked_message(&self, seconds: u64) -> String {
        self.before_password(self.lockout_words(seconds))
    }

    /// `messages.locked` for `seconds` more: what any refusal after a password says.
    fn lockout_words(&self, seconds: u64) -> String {
        self.cfg.messages.locked.replace("{seconds}", &seconds.to_string())
    }

    /// A refusal's Reply-Message in mode otp, where no password is ever checked:
    /// unless `detailed_messages`, "locked" and "not enrolled" read as a wrong
    /// code, so that the answers do not tell an attacker which accounts exist.
    fn before_password(&self, detailed: String) -> String {
        if matches!(self.cfg.mode, Mode::Otp | Mode::OtpOrPush) && !self.cfg.detailed_messages {
            self.cfg.messages.wrong_code.clone()
        } else {
            detailed
        }
    }

    pub fn authorize(&self, input: AuthorizeInput<'_>) -> AuthorizeOutput {
        let mut trail = Trail { quiet: input.quiet, ..Trail::default() };
        let mut out = self.authorize_inner(&input, &mut trail);
        out.log = trail.log;
        out
    }

    fn authorize_inner(&self, input: &AuthorizeInput<'_>, trail: &mut Trail) -> AuthorizeOutput {
        let mut out = AuthorizeOutput::default();
        if let Some(other) = input.auth_type.filter(|t| *t != self.name) {
            trail.info(auth_type_already(other, &self.name));
            out.outcome = Some(Outcome::Noop);
            return out;
        }
        let names = match self.resolve(input.user_name, trail) {
            Ok(n) => n,
            Err(why) if input.user_name.is_none() => {
                trail.debug(why);
                out.outcome = Some(Outcome::Noop);
                return out;
            }
            Err(why) => {
                trail.info(format!("rejected: {why}"));
                out.reply_message = Some(self.cfg.messages.bad_user.clone());
                out.outcome = Some(Outcome::Invalid);
                return out;
            }
        };
        // Like rlm_realm: Stripped-User-Name only when a realm was actually stripped.
        if self.cfg.realm.strip && names.realm.is_some() {
            out.stripped_user_name = Some(names.stripped.to_owned());
        }
        out.realm = names.realm.map(str::to_owned);
        if let Some(realm) = &names.realm {
            trail.debug(format!("user \"{}\" in realm \"{realm}\"", names.stripped));
        }
        if input.eap && input.password.is_some() {
            return refuse_eap_with_password(&self.cfg, input.user_name, trail);
        }

        let db = self.tokens(trail);
        if db.user(&names.lookup).is_none() {
            if !self.cfg.require_token {
                trail.debug(format!("\"{}\" has no token and require_token is off: not ours", names.lookup));
                out.outcome = Some(if out.stripped_user_name.is_some() { Outcome::Updated } else { Outcome::Noop });
                return out;
            }
            trail.debug(format!("\"{}\" has no token: authenticate will reject", names.lookup));
        } else {
            // The journal as last read; read it again only for a user it shows locked,
            // who may have been unlocked by mfa-admin since (authenticate always reads it).
            // authorize only looks at the journal in memory (authenticate reads it again):
            // a user it shows locked is refused before the first factor runs. Not an
            // answer to a challenge (a State): no first factor runs then, and authenticate
            // checks the lock with each answer, but for the approval of the push whose
            // sending locked the user, which may still be approved (README, mode push).
            let refused = if input.has_state {
                None
            } else {
                self.locked_for(&self.store().cached_lock(&names.lookup))
                    .and_then(|_| self.refuse_if_locked(&names.lookup, trail))
            };
            if let Some(decision) = refused {
                // Before the first factor: unless detailed_messages, a locked user is
                // refused as a wrong password is (no Reply-Message), or in modes otp and
                // otp-or-push (whose answers before a password are otp's) as a wrong
                // code, so that the lock does not show the account exists.
                out.reply_message = match (self.cfg.detailed_messages, self.cfg.mode) {
                    (true, _) | (false, Mode::Otp | Mode::OtpOrPush) => decision.messages.into_iter().next(),
                    (false, _) => None,
                };
                out.outcome = Some(decision.outcome);
                out.tally = decision.tally;
                return out;
            }
        }

        if input.eap && input.password.is_none() {
            // 802.1X: the eap module runs the conversation; with EAP-GTC the typed text
            // reaches this module's authenticate (eap's gtc { auth_type }), split there.
            trail.debug("EAP request without User-Password: left to eap, the code is checked at authenticate");
            out.deferred = true;
            out.outcome = Some(Outcome::Noop);
            return out;
        }
        if let Some(code) = self.code_alone(input) {
            return self.verify_code_alone(&db, &names.lookup, code, out, trail);
        }
        if input.has_state && self.cfg.mode.challenges() {
            // The answer to our challenge: the field holds the answer, not a password.
            trail.debug("answer to a challenge: Auth-Type goes straight to this module");
        } else if !self.split_password(input, &mut out, trail) {
            return out;
        }
        out.set_auth_type = input.auth_type.is_none();
        out.outcome = Some(Outcome::Updated);
        out
    }

    /// password+otp (and auto, when the field holds both): the password part for the
    /// first factor, the code part kept for authenticate. False when the request is
    /// refused (`out` then says why).
    fn split_password(&self, input: &AuthorizeInput<'_>, out: &mut AuthorizeOutput, trail: &mut Trail) -> bool {
        if !matches!(self.cfg.mode, Mode::PasswordOtp | Mode::Auto) {
            return true; // the other modes never split the field
        }
        // Not lossy: the password part goes back to the first factor, and U+FFFD in its
        // place would let any invalid byte match a stored password holding U+FFFD.
        let field = match input.password.map(std::str::from_utf8) {
            Some(Err(_)) if self.cfg.mode == Mode::PasswordOtp => {
                trail.info(format!(
                    "rejected \"{}\": User-Password is not valid UTF-8, so it is not split into password and code",
                    post_auth::shown(input.user_name)
                ));
                *out = AuthorizeOutput {
                    outcome: Some(Outcome::Reject),
                    tally: Tally::Reject { cause: Cause::Malformed, locks: false },
                    reply_message: Some(self.cfg.messages.no_code.clone()),
                    ..AuthorizeOutput::default()
                };
                return false;
            }
            // auto: not split; the first factor checks the field as it came, then a challenge.
            other => other.and_then(Result::ok),
        };
        let split = field.map(|f| password::split(f, &self.cfg.split));
        match (self.cfg.mode, split) {
            (Mode::PasswordOtp, Some(Ok(parts))) => {
                trail.debug("split User-Password into password and code");
                out.password = Some(parts.password.to_string());
                out.stashed_code = Some(parts.otp.to_string());
            }
            // auto: only a field that ends in something shaped like a code holds one.
            (Mode::Auto, Some(Ok(parts))) if self.auto_code.is_match(parts.otp) => {
                trail.debug("User-Password holds password and code: checking both at once");
                out.password = Some(parts.password.to_string());
                out.stashed_code = Some(parts.otp.to_string());
            }
            // auto with push: "password,push" or "password," asks for a push.
            (Mode::Auto, Some(Ok(parts))) if self.pusher.is_some() && parts.otp.eq_ignore_ascii_case(PUSH_WORD) => {
                trail.debug("User-Password asks for a push");
                out.password = Some(parts.password.to_string());
                out.stashed_code = Some(PUSH_WORD.to_string());
            }
            (Mode::Auto, Some(Err(password::SplitError::EmptyOtp))) if self.pusher.is_some() => {
                let field = field.unwrap_or_default();
                let sep = self.cfg.split.separator.as_str();
                let bare = match self.cfg.split.otp_position {
                    password::OtpPosition::Last => field.strip_suffix(sep),
                    password::OtpPosition::First => field.strip_prefix(sep),
                };
                trail.debug("User-Password ends with the separator alone: a push is asked for");
                out.password = bare.map(str::to_string);
                out.stashed_code = Some(PUSH_WORD.to_string());
            }
            (Mode::Auto, _) => trail.debug("User-Password holds the password alone: the code is asked for next"),
            (Mode::PasswordOtp, split) => {
                let why = match split {
                    Some(Err(why)) => format!("User-Password: {why}"),
                    _ => "the request has no User-Password".to_string(),
                };
                trail.info(format!("rejected \"{}\": {why}", post_auth::shown(input.user_name)));
                *out = AuthorizeOutput {
                    outcome: Some(Outcome::Reject),
                    tally: Tally::Reject { cause: Cause::Malformed, locks: false },
                    reply_message: Some(self.cfg.messages.no_code.clone()),
                    ..AuthorizeOutput::default()
                };
                return false;
            }
            (Mode::Otp | Mode::PasswordThenOtp | Mode::Push | Mode::OtpOrPush, _) => {}
        }
        true
    }

    pub fn authenticate(&self, input: AuthenticateInput) -> AuthenticateOutput {
        if let Some(out) = self.split_late(&input) {
            return out;
        }
        let mut trail = Trail { quiet: input.quiet, ..Trail::default() };
        let user_name = input.user_name;
        let mschap2_ident = input.mschap2.as_ref().map(|m| m.ident);
        let decision = self.authenticate_inner(input, &mut trail);
        let mut reply_attributes = decision.attributes;
        if decision.outcome == Outcome::Ok && !self.rules.is_empty() {
            reply_attributes.extend(self.local_reply(user_name, &mut trail));
        }
        if let (Some(ident), Outcome::Reject | Outcome::Userlock | Outcome::Fail | Outcome::Invalid) =
            (mschap2_ident, decision.outcome)
        {
            // The client shows why, instead of waiting for a reply that never comes.
            reply_attributes.push(codes::mschap2_error(ident, &push::random_bytes()));
        }
        AuthenticateOutput {
            outcome: Some(decision.outcome),
            reply_messages: decision.messages,
            challenge_state: decision.state,
            reply_attributes,
            split: None,
            tally: decision.tally,
            log: trail.log,
        }
    }

    fn authenticate_inner(&self, input: AuthenticateInput, trail: &mut Trail) -> Decision {
        let messages = &self.cfg.messages;
        let names = match self.resolve(input.user_name, trail) {
            Ok(n) => n,
            Err(why) => {
                trail.info(format!("rejected: {why}"));
                return Decision::refuse(Outcome::Invalid, messages.bad_user.clone());
            }
        };
        let user = names.lookup;
        let db = self.tokens(trail);
        let entry = db.user(&user);
        let origin =
            Origin { nas: &input.nas, client: &input.client, nas_name: &input.nas_name, session: &input.session };

        // EAP-GTC's Auth-Type calls the module for every user: one it does not take (no
        // token, require_token = no) is left to the first factor in that section, as
        // authorize leaves such a user to pap everywhere else.
        if entry.is_none() && !self.cfg.require_token && input.inner_eap() {
            trail.debug(format!("\"{user}\" has no token and require_token is off: the first factor alone decides"));
            return Decision { outcome: Outcome::Noop, tally: Tally::Nothing, ..Decision::accept() };
        }
        // A State on this path is the answer to one of our challenges, or it is refused:
        // the site skips the first factor for such requests.
        if input.inner_eap() && input.state.is_some() {
            trail.debug("the State belongs to the inner EAP session (the eap module's), not to this module");
        }
        if self.cfg.mode != Mode::Otp {
            if let Some(state) = input.state.filter(|_| !input.inner_eap()) {
                let Some(entry) = entry else {
                    // No State of ours names a user without a second factor: refused as any
                    // foreign State is, so that the answer does not tell who is enrolled.
                    trail.info(format!("rejected: \"{user}\" answered a challenge but has no second factor"));
                    return Decision::reject(Cause::BadState, messages.bad_state.clone());
                };
                let answer = input.password.map(String::from_utf8_lossy).unwrap_or_default();
                return self.answer(&user, entry, state, &answer, &origin, trail);
            }
        }

        let given = match (self.cfg.mode, &input.stashed_code) {
            (Mode::Auto, Some(word)) if word == PUSH_WORD => {
                let Some(entry) = entry else {
                    trail.info(format!("rejected: \"{user}\" is not in the token file"));
                    return Decision::reject(Cause::NoToken, messages.no_token.clone());
                };
                return self.push_login(&user, entry, &origin, input.password.unwrap_or_default(), trail);
            }
            (Mode::PasswordOtp | Mode::Auto, Some(code)) => Given::Code(code.as_str().into()),
            (Mode::PasswordOtp, None) => {
                trail.error(
                    "no code was split off in authorize: list this module in the authorize section \
                     before the first factor (see sites-available/mfa)",
                );
                return Decision::refuse(Outcome::Fail, messages.internal.clone());
            }
            (Mode::PasswordThenOtp | Mode::Auto, _) => {
                // The first factor has accepted the password: ask for the second.
                // A listed user has push when a provider is configured (it knows the device).
                let Some(entry) = entry.filter(|e| e.has_factor() || self.cfg.push.is_some()) else {
                    trail.info(format!("rejected: \"{user}\" has no second factor enrolled"));
                    return Decision::reject(Cause::NoToken, messages.no_token.clone());
                };
                return self.start_dialogue(&user, entry, &origin, trail);
            }
            (Mode::Push | Mode::OtpOrPush, _) => {
                // The first factor has accepted the password: ask the user's device.
                let Some(entry) = entry else {
                    trail.info(format!("rejected: \"{user}\" is not in the token file"));
                    return Decision::reject(Cause::NoToken, messages.no_token.clone());
                };
                return self.push_login(&user, entry, &origin, input.password.unwrap_or_default(), trail);
            }
            (Mode::Otp, _) => match (input.password, &input.chap, &input.mschap2) {
                (Some(p), _, _) if !p.is_empty() => Given::Code(String::from_utf8_lossy(p)),
                (None, Some(chap), _) => Given::Chap(chap.clone()),
                (None, None, Some(mschap2)) => Given::MsChap2(mschap2.clone()),
                _ => {
                    trail.info(format!("rejected: \"{user}\" sent no code (User-Password is missing or empty)"));
                    return Decision::refuse(Outcome::Invalid, self.before_password(self.bad_format_message(&[])));
                }
            },
        };

        let Some(entry) = entry.filter(|e| !e.tokens.is_empty()) else {
            trail.info(format!("rejected: \"{user}\" has no token enrolled"));
            return Decision::reject(Cause::NoToken, self.before_password(messages.no_token.clone()));
        };
        self.check_code(&user, &entry.tokens, &given, trail)
    }

    /// The `reply` rules over what the token file knows of the user:
    /// `user.username`, `user.groups` and `realm`.
    fn local_reply(&self, user_name: Option<&[u8]>, trail: &mut Trail) -> Vec<(String, String)> {
        let Ok(names) = self.resolve(user_name, trail) else { return vec![] };
        let db = self.tokens(trail);
        let groups = db.user(&names.lookup).map(|u| u.groups.clone()).unwrap_or_default();
        let detail = serde_json::json!({
            "user": {"username": names.stripped, "groups": groups},
            "realm": names.realm,
        });
        crate::backend::mapping::reply_attributes(&self.rules, &detail)
    }

    fn windows(&self) -> Windows {
        Windows { totp_window: self.cfg.totp_window, hotp_look_ahead: self.cfg.hotp_look_ahead }
    }
}

/// No EAP client sends a User-Password next to an EAP-Message: one that does forged it,
/// to have a code kept for EAP-GTC's Auth-Type inside TTLS, or to pass a made-up State
/// as the EAP session's and skip the first factor. Refused before anything is split or
/// kept, whoever the user is.
fn refuse_eap_with_password(cfg: &Config, user_name: Option<&[u8]>, trail: &mut Trail) -> AuthorizeOutput {
    trail.info(format!(
        "rejected \"{}\": the request carries both an EAP-Message and a User-Password, which no EAP client sends",
        post_auth::shown(user_name)
    ));
    AuthorizeOutput {
        outcome: Some(Outcome::Reject),
        tally: Tally::Reject { cause: Cause::BadState, locks: false },
        reply_message: Some(cfg.messages.bad_state.clone()),
        ..AuthorizeOutput::default()
    }
}

/// A User-Name split by the realm settings; an error says why it is unusable.
fn parse_user_name<'a>(
    user_name: Option<&'a [u8]>,
    cfg: &realm::RealmConfig,
) -> Result<realm::ParsedName<'a>, &'static str> {
    let raw = user_name.ok_or("the request has no User-Name")?;
    let name = std::str::from_utf8(raw).map_err(|_| "the User-Name is not valid UTF-8")?;
    // Bytes for an ASCII name (the usual one), characters otherwise (C1 controls are two bytes).
    let control =
        if name.is_ascii() { name.bytes().any(|b| b.is_ascii_control()) } else { name.chars().any(char::is_control) };
    if name.is_empty() || control {
        return Err("the User-Name is empty or holds control characters");
    }
    realm::parse(name, cfg).map_err(|e| match e {
        realm::RealmError::EmptyUser => "the User-Name has an empty user part",
        realm::RealmError::EmptyRealm => "the User-Name has an empty realm part",
    })
}

/// One module instance: the local token file, privacyIDEA or Duo.
pub enum Backend {
    Local(Box<Engine>),
    PrivacyIdea(Box<PiEngine>),
    Duo(Box<DuoEngine>),
}

impl Backend {
    /// The backend the configuration names; errors name the item.
    pub fn new(name: &str, cfg: Config, clock: Arc<dyn Clock>) -> Result<Backend, ConfigError> {
        // The SMS and e-mail sections stop the start when broken, whatever the backend uses.
        if cfg.privacyidea.is_some() || cfg.duo.is_some() {
            senders(&cfg.channels)?;
        }
        Ok(if cfg.privacyidea.is_some() {
            Backend::PrivacyIdea(Box::new(PiEngine::new(name, cfg, clock)?))
        } else if cfg.duo.is_some() {
            Backend::Duo(Box::new(DuoEngine::new(name, cfg, clock)?))
        } else {
            Backend::Local(Box::new(Engine::new(name, cfg, clock)?))
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Backend::Local(e) => e.name(),
            Backend::PrivacyIdea(e) => e.name(),
            Backend::Duo(e) => e.name(),
        }
    }

    pub fn config(&self) -> &Config {
        match self {
            Backend::Local(e) => e.config(),
            Backend::PrivacyIdea(e) => e.config(),
            Backend::Duo(e) => e.config(),
        }
    }

    pub fn authorize(&self, input: AuthorizeInput<'_>) -> AuthorizeOutput {
        let _budget = self.store_budget();
        match self {
            Backend::Local(e) => e.authorize(input),
            Backend::PrivacyIdea(e) => e.authorize(input),
            Backend::Duo(e) => e.authorize(input),
        }
    }

    pub fn authenticate(&self, input: AuthenticateInput) -> AuthenticateOutput {
        let _budget = self.store_budget();
        if let Some(refused) = self.refuse_late_text(&input) {
            return refused;
        }
        match self {
            Backend::Local(e) => e.authenticate(input),
            Backend::PrivacyIdea(e) => e.authenticate(input),
            Backend::Duo(e) => e.authenticate(input),
        }
    }
}

impl Backend {
    /// EAP-GTC hands the typed text over at authenticate only, in the section
    /// `mfa { ok = return }  pap  mfa`: its first call runs before the password is
    /// checked. Only `password+otp` (which splits there), `otp` (the code alone) and
    /// privacyIDEA (which checks the whole text) can serve it; any other mode would
    /// send a push, or take a code, with the password never checked.
    fn refuse_late_text(&self, input: &AuthenticateInput) -> Option<AuthenticateOutput> {
        let refused = match self {
            // authorize marks the request (deferred_split) when it saw no typed text.
            Backend::Local(e) => input.deferred_split && !matches!(e.config().mode, Mode::Otp | Mode::PasswordOtp),
            Backend::PrivacyIdea(_) => false,
            // Duo's authorize marks nothing: any inner EAP request reaching authenticate
            // is GTC's (README: Duo does not serve 802.1X through EAP).
            Backend::Duo(_) => input.inner_eap(),
        };
        if !refused {
            return None;
        }
        let why = match self {
            Backend::Duo(_) => "backend duo".to_string(),
            _ => format!("mode {}", self.config().mode.name()),
        };
        Some(AuthenticateOutput {
            outcome: Some(Outcome::Fail),
            tally: Tally::Reject { cause: Cause::Unavailable, locks: false },
            reply_messages: vec![self.config().messages.internal.clone()],
            log: vec![LogLine {
                level: Level::Error,
                text: format!(
                    "refused \"{}\": {why} cannot serve EAP-GTC (PEAP), whose first call comes before the \
                     password is checked; inside the tunnel use mode password+otp or otp",
                    post_auth::shown(input.user_name)
                ),
            }],
            ..AuthenticateOutput::default()
        })
    }

    /// With the shared store: the most a call waits on it in all,
    /// [`crate::config::RedisSettings::budget`] (README, "What happens when Redis fails").
    /// Within a request's budget (the FFI layer's [`Backend::request_budget`]) it
    /// changes nothing; a call that names no request (tests, tools) gets its own.
    fn store_budget(&self) -> CallBudget {
        self.request_budget(None)
    }

    /// The store budget of a call of FreeRADIUS's request `number`, held by the
    /// FFI layer around authorize, authenticate and post-auth: the calls of one
    /// request share one budget, so that its waits on the store add up to no more.
    pub fn request_budget(&self, number: Option<u64>) -> CallBudget {
        let budget = match &self.config().store {
            StoreChoice::Redis(redis) => Some(redis.budget()),
            StoreChoice::Journal => None,
        };
        CallBudget::for_request(budget, number)
    }
}

/// The per-request line when policy chose another Auth-Type before the module.
fn auth_type_already(other: &str, name: &str) -> String {
    format!(
        "control:Auth-Type is already \"{other}\" (an earlier module or policy set it): {name} does not check \
         the second factor here, and its post-auth check refuses the Accept of a user who has one"
    )
}

/// In auto mode, what stands in place of the code to ask for a push.
const PUSH_WORD: &str = "push";

/// The SMS sender and the e-mail sender, each where configured.
type Senders = (Option<Box<dyn Sender>>, Option<Box<dyn Sender>>);

/// The SMS and e-mail senders of `channels`, built whatever the mode or backend,
/// so that what only a client can check (a body template, a CA file) stops the
/// start too; the local engine keeps them where it challenges.
pub(crate) fn senders(channels: &crate::config::Channels) -> Result<Senders, ConfigError> {
    let sms = http_sender("sms", &channels.sms)?;
    let email = match &channels.smtp {
        Some(smtp) => Some(smtp_sender(smtp)?),
        None => http_sender("email", &channels.email)?,
    };
    Ok((sms, email))
}

fn http_sender(
    section: &'static str,
    gateway: &Option<crate::config::Gateway>,
) -> Result<Option<Box<dyn Sender>>, ConfigError> {
    let Some(g) = gateway else { return Ok(None) };
    let cfg = GatewayConfig {
        url: g.url.clone(),
        authorization: g.authorization.clone(),
        body_template: g.body.clone(),
        body_format: g.body_format,
        timeout: g.timeout,
        ca_file: g.ca_file.clone(),
        ca_path: g.ca_path.clone(),
    };
    HttpGateway::new(cfg).map(|g| Some(Box::new(g) as Box<dyn Sender>)).map_err(|e| {
        // The client names the item inside its section ("url", "body_template").
        let field = match e.field {
            "url" | "authorization" | "timeout" | "message" | "ca_file" | "ca_path" => e.field,
            _ => "body",
        };
        ConfigError::new(format!("{section}.{field}"), e.message)
    })
}

fn smtp_sender(smtp: &crate::config::Smtp) -> Result<Box<dyn Sender>, ConfigError> {
    let cfg = SmtpConfig {
        host: smtp.server.host.clone(),
        port: smtp.server.port,
        tls: smtp.tls,
        login: smtp.login.clone(),
        from: smtp.from.clone(),
        subject: smtp.subject.clone(),
        timeout: smtp.timeout,
        ca_file: smtp.ca_file.clone(),
        ca_path: smtp.ca_path.clone(),
    };
    // The client names the item inside the section ("from", "ca_file").
    SmtpSender::new(cfg)
        .map(|s| Box::new(s) as Box<dyn Sender>)
        .map_err(|e| ConfigError::new(format!("smtp.{}", e.field), e.message))
}

/// The store `state_store` names: the state journal `cfg.state`, or Redis.
/// The state store the configuration names; with `stats { file }`, counted in `counters`.
pub(crate) fn open_store(
    cfg: &Config,
    counters: Option<&'static Counters>,
) -> Result<Box<dyn StateStore>, ConfigError> {
    match &cfg.store {
        StoreChoice::Journal => {
            let options = JournalOptions { fsync: cfg.fsync, ..JournalOptions::default() };
            let mut store =
                LocalStore::open(&cfg.state, options).map_err(|e| ConfigError::new("state", e.to_string()))?;
            if let Some(counters) = counters {
                store.meter(counters);
            }
            Ok(Box::new(store))
        }
        StoreChoice::Redis(settings) => {
            let mut store = RedisStore::open(settings.clone()).map_err(|(item, e)| ConfigError::new(item, e))?;
            if let Some(counters) = counters {
                store.meter(counters);
            }
            Ok(Box::new(store))
        }
    }
}

/// The counters of instance `name`, when `stats { file }` turns them on.
pub(crate) fn counters_of(name: &str, cfg: &Config) -> Option<&'static Counters> {
    cfg.stats.as_ref().map(|_| Counters::for_instance(name))
}

#[cfg(test)]
mod dialogue_tests;
#[cfg(test)]
mod duo_tests;
#[cfg(test)]
mod eap_tests;
#[cfg(test)]
mod mschap_tests;
#[cfg(test)]
mod otp_or_push_tests;
#[cfg(test)]
mod privacyidea_tests;
#[cfg(test)]
mod push_tests;
#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod test_config;
#[cfg(test)]
mod tests;

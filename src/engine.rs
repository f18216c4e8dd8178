//! The decisions of the module: what authorize and authenticate do with a
//! request, as plain data in and out. The FFI layer reads the attributes,
//! calls these, and writes back what they return.
//!
//! Secrets (the password, the code, token seeds) never enter a log line.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::config::{Config, ConfigError, Mode};
use crate::journal::{JournalOptions, LockState, StateJournal};
use crate::otp;
use crate::password;
use crate::realm;
use crate::reload::{ReloadEvent, Reloading};
use crate::tokens::{Token, TokenDb, TokenKind};
use crate::usermap::UserMap;
use crate::verify::{self, Windows};

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
}

/// What authorize reads from the request.
pub struct AuthorizeInput<'a> {
    pub user_name: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    /// The name of `control:Auth-Type`, if policy already set one.
    pub auth_type: Option<&'a str>,
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
    pub log: Vec<LogLine>,
}

pub struct AuthenticateInput<'a> {
    pub user_name: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub stashed_code: Option<String>,
}

#[derive(Debug, Default)]
pub struct AuthenticateOutput {
    pub outcome: Option<Outcome>,
    pub reply_message: Option<String>,
    pub log: Vec<LogLine>,
}

/// Collects log lines and the Reply-Message while a decision is made.
#[derive(Default)]
struct Trail {
    log: Vec<LogLine>,
}

impl Trail {
    fn debug(&mut self, text: impl Into<String>) {
        self.log.push(LogLine { level: Level::Debug, text: text.into() });
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

/// The names a request resolves to.
struct Names {
    /// After realm handling: what Stripped-User-Name gets.
    stripped: String,
    realm: Option<String>,
    /// After the user map and suffix: the token-store name.
    lookup: String,
}

pub struct Engine {
    name: String,
    cfg: Config,
    clock: Arc<dyn Clock>,
    tokens: Reloading<TokenDb>,
    user_map: Option<Reloading<UserMap>>,
    state: Mutex<StateJournal>,
}

fn load_tokens(path: &Path) -> Result<TokenDb, String> {
    TokenDb::load(path).map_err(|e| e.to_string())
}

impl Engine {
    /// Opens the token file, the user map and the state journal. A failure names
    /// the configuration item, and FreeRADIUS refuses to start.
    pub fn new(name: &str, cfg: Config, clock: Arc<dyn Clock>) -> Result<Engine, ConfigError> {
        let tokens = Reloading::open(&cfg.tokens, load_tokens)
            .map_err(|message| ConfigError { item: "tokens", message })?;
        let user_map = match &cfg.user_map {
            Some(path) => Some(
                Reloading::open(path, UserMap::load)
                    .map_err(|message| ConfigError { item: "user_map", message })?,
            ),
            None => None,
        };
        let journal = StateJournal::open(
            &cfg.state,
            JournalOptions { fsync: cfg.fsync, ..JournalOptions::default() },
        )
        .map_err(|e| ConfigError { item: "state", message: e.to_string() })?;
        Ok(Engine {
            name: name.to_string(),
            cfg,
            clock,
            tokens,
            user_map,
            state: Mutex::new(journal),
        })
    }

    /// The module instance's name, which is also its Auth-Type.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The number of users in the token store now loaded.
    pub fn user_count(&self) -> usize {
        self.tokens.get().0.len()
    }

    fn state(&self) -> MutexGuard<'_, StateJournal> {
        // A panic while holding the lock leaves the journal consistent (each record
        // is one write), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tokens(&self, trail: &mut Trail) -> Arc<TokenDb> {
        let (db, event) = self.tokens.get();
        match event {
            Some(ReloadEvent::Reloaded) => {
                trail.info(format!("reloaded {} ({} users)", self.tokens.path().display(), db.len()))
            }
            Some(ReloadEvent::Refused(why)) => {
                trail.error(format!("token file not reloaded, keeping the last good copy: {why}"))
            }
            None => {}
        }
        db
    }

    /// Realm handling, user map and suffix. `None` when the name is unusable.
    fn resolve(&self, user_name: Option<&[u8]>, trail: &mut Trail) -> Result<Names, &'static str> {
        let Some(raw) = user_name else {
            return Err("the request has no User-Name");
        };
        let Ok(name) = std::str::from_utf8(raw) else {
            return Err("the User-Name is not valid UTF-8");
        };
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err("the User-Name is empty or holds control characters");
        }
        let parsed = realm::parse(name, &self.cfg.realm).map_err(|e| match e {
            realm::RealmError::EmptyUser => "the User-Name has an empty user part",
            realm::RealmError::EmptyRealm => "the User-Name has an empty realm part",
        })?;
        let mapped = match &self.user_map {
            Some(map) => {
                let (map, event) = map.get();
                if let Some(ReloadEvent::Refused(why)) = event {
                    trail.error(format!("user map not reloaded, keeping the last good copy: {why}"));
                }
                map.get(&parsed.user).map(str::to_string)
            }
            None => None,
        };
        if let Some(to) = &mapped {
            trail.debug(format!("user map: \"{}\" is \"{to}\" in the token store", parsed.user));
        }
        let lookup = format!("{}{}", mapped.as_deref().unwrap_or(&parsed.user), self.cfg.user_suffix);
        Ok(Names { stripped: parsed.user, realm: parsed.realm, lookup })
    }

    fn locked_for(&self, lock: &LockState) -> Option<u64> {
        let now = self.clock.now();
        (lock.locked_until > now).then(|| lock.locked_until - now)
    }

    fn locked_message(&self, seconds: u64) -> String {
        self.cfg.messages.locked.replace("{seconds}", &seconds.to_string())
    }

    pub fn authorize(&self, input: AuthorizeInput<'_>) -> AuthorizeOutput {
        let mut trail = Trail::default();
        let mut out = self.authorize_inner(&input, &mut trail);
        out.log = trail.log;
        out
    }

    fn authorize_inner(&self, input: &AuthorizeInput<'_>, trail: &mut Trail) -> AuthorizeOutput {
        let mut out = AuthorizeOutput::default();
        if let Some(other) = input.auth_type.filter(|t| *t != self.name) {
            trail.debug(format!("control:Auth-Type is already \"{other}\", leaving the request alone"));
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
            out.stripped_user_name = Some(names.stripped.clone());
        }
        out.realm = names.realm.clone();
        if let Some(realm) = &names.realm {
            trail.debug(format!("user \"{}\" in realm \"{realm}\"", names.stripped));
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
            let lock = {
                let mut state = self.state();
                if let Err(e) = state.refresh() {
                    trail.error(format!("cannot read the state journal: {e}"));
                    out.reply_message = Some(self.cfg.messages.internal.clone());
                    out.outcome = Some(Outcome::Fail);
                    return out;
                }
                state.lock(&names.lookup)
            };
            if let Some(seconds) = self.locked_for(&lock) {
                trail.info(format!("rejected: \"{}\" is locked for {seconds} more seconds", names.lookup));
                out.reply_message = Some(self.locked_message(seconds));
                out.outcome = Some(Outcome::Userlock);
                return out;
            }
        }

        if self.cfg.mode == Mode::PasswordOtp {
            let field = input.password.map(String::from_utf8_lossy);
            let split = field.as_deref().map(|f| password::split(f, &self.cfg.split));
            match split {
                Some(Ok(parts)) => {
                    trail.debug("split User-Password into password and code");
                    out.password = Some(parts.password.to_string());
                    out.stashed_code = Some(parts.otp.to_string());
                }
                Some(Err(why)) => {
                    trail.info(format!("rejected: User-Password: {why}"));
                    out.reply_message = Some(self.cfg.messages.no_code.clone());
                    out.outcome = Some(Outcome::Reject);
                    return out;
                }
                None => {
                    trail.info("rejected: the request has no User-Password");
                    out.reply_message = Some(self.cfg.messages.no_code.clone());
                    out.outcome = Some(Outcome::Reject);
                    return out;
                }
            }
        }
        out.set_auth_type = input.auth_type.is_none();
        out.outcome = Some(Outcome::Updated);
        out
    }

    pub fn authenticate(&self, input: AuthenticateInput) -> AuthenticateOutput {
        let mut trail = Trail::default();
        let (outcome, reply_message) = self.authenticate_inner(input, &mut trail);
        AuthenticateOutput { outcome: Some(outcome), reply_message, log: trail.log }
    }

    fn authenticate_inner(&self, input: AuthenticateInput, trail: &mut Trail) -> (Outcome, Option<String>) {
        let messages = &self.cfg.messages;
        let names = match self.resolve(input.user_name, trail) {
            Ok(n) => n,
            Err(why) => {
                trail.info(format!("rejected: {why}"));
                return (Outcome::Invalid, Some(messages.bad_user.clone()));
            }
        };
        let user = names.lookup;

        let code: String = match self.cfg.mode {
            Mode::Otp => match input.password {
                Some(p) if !p.is_empty() => String::from_utf8_lossy(p).into_owned(),
                _ => {
                    trail.info(format!("rejected: \"{user}\" sent no code (User-Password is missing or empty)"));
                    return (Outcome::Invalid, Some(self.bad_format_message(&[])));
                }
            },
            Mode::PasswordOtp => match input.stashed_code {
                Some(c) => c,
                None => {
                    trail.error(
                        "no code was split off in authorize: list this module in the authorize section \
                         before the first factor (see sites-available/mfa)",
                    );
                    return (Outcome::Fail, Some(messages.internal.clone()));
                }
            },
        };

        let db = self.tokens(trail);
        let Some(entry) = db.user(&user) else {
            trail.info(format!("rejected: \"{user}\" has no token enrolled"));
            return (Outcome::Reject, Some(messages.no_token.clone()));
        };
        if entry.tokens.is_empty() {
            trail.info(format!("rejected: \"{user}\" has no token enrolled"));
            return (Outcome::Reject, Some(messages.no_token.clone()));
        }

        let now = self.clock.now();
        let mut state = self.state();
        if let Err(e) = state.refresh() {
            trail.error(format!("cannot read the state journal: {e}"));
            return (Outcome::Fail, Some(messages.internal.clone()));
        }
        if let Some(seconds) = self.locked_for(&state.lock(&user)) {
            trail.info(format!("rejected: \"{user}\" is locked for {seconds} more seconds"));
            return (Outcome::Userlock, Some(self.locked_message(seconds)));
        }

        let well_formed = entry.tokens.iter().any(|t| otp::is_well_formed(&code, t.digits));
        if well_formed {
            for token in &entry.tokens {
                let token_state = state.token(&user, &token.serial);
                if let Some(found) = verify::find(token, &token_state, &code, now, self.windows()) {
                    // Claimed under the journal's file lock: another process sharing the
                    // journal (a second instance after a HUP, mfa-admin) cannot take it too.
                    let claimed = match token.kind {
                        TokenKind::Totp { .. } => state.claim_totp_step(&user, &token.serial, found),
                        TokenKind::Hotp => state.claim_hotp_counter(&user, &token.serial, found.saturating_add(1)),
                    };
                    match claimed {
                        Ok(true) => {}
                        Ok(false) => {
                            trail.info(format!("rejected: \"{user}\" sent a code used meanwhile by another process"));
                            return (Outcome::Reject, Some(messages.wrong_code.clone()));
                        }
                        Err(e) => {
                            // Accepting without a durable record would let the code be used again.
                            trail.error(format!("cannot record the accepted code in the state journal: {e}"));
                            return (Outcome::Fail, Some(messages.internal.clone()));
                        }
                    }
                    if state.lock(&user).failures > 0 {
                        if let Err(e) = state.unlock(&user) {
                            trail.error(format!("cannot reset the failure count: {e}"));
                        }
                    }
                    trail.info(format!("accepted: \"{user}\" with token {}", token.serial));
                    return (Outcome::Ok, None);
                }
            }
            let replayed = entry.tokens.iter().any(|t| verify::is_replay(t, &code, now, self.windows()));
            trail.info(format!(
                "rejected: \"{user}\" sent a {} code",
                if replayed { "used (replayed)" } else { "wrong" }
            ));
        } else {
            trail.info(format!("rejected: \"{user}\" sent a code that is not {}", self.digit_words(&entry.tokens)));
        }

        let reply = self.record_failure(&user, now, &mut state, trail);
        let message = match reply {
            Some(seconds) => self.locked_message(seconds),
            None if well_formed => messages.wrong_code.clone(),
            None => self.bad_format_message(&entry.tokens),
        };
        (if reply.is_some() { Outcome::Userlock } else { Outcome::Reject }, Some(message))
    }

    fn windows(&self) -> Windows {
        Windows { totp_window: self.cfg.totp_window, hotp_look_ahead: self.cfg.hotp_look_ahead }
    }

    /// Counts a failure; returns the seconds of lockout when this failure locks the user.
    fn record_failure(&self, user: &str, now: u64, state: &mut StateJournal, trail: &mut Trail) -> Option<u64> {
        let max = self.cfg.lockout.max_failures;
        let mut lock = state.lock(user);
        if lock.locked_until != 0 && lock.locked_until <= now {
            // A lock that has run out starts a fresh count.
            lock = LockState::default();
        }
        lock.failures = lock.failures.saturating_add(1);
        let locks_now = max > 0 && lock.failures >= max;
        if locks_now {
            lock.locked_until = now + self.cfg.lockout.duration;
            trail.warn(format!(
                "\"{user}\" locked for {} seconds after {} consecutive failures",
                self.cfg.lockout.duration, lock.failures
            ));
        }
        if let Err(e) = state.set_lock(user, lock) {
            trail.error(format!("cannot record the failure in the state journal: {e}"));
        }
        locks_now.then_some(self.cfg.lockout.duration)
    }

    /// "6 digits", "6 or 8 digits": the code lengths of these tokens.
    fn digit_words(&self, tokens: &[Token]) -> String {
        let mut digits: Vec<u32> = tokens.iter().map(|t| t.digits).collect();
        if digits.is_empty() {
            digits.push(otp::MIN_DIGITS);
        }
        digits.sort_unstable();
        digits.dedup();
        let words: Vec<String> = digits.iter().map(u32::to_string).collect();
        format!("{} digits", words.join(" or "))
    }

    fn bad_format_message(&self, tokens: &[Token]) -> String {
        let words = self.digit_words(tokens);
        self.cfg.messages.bad_format.replace("{digits}", words.trim_end_matches(" digits"))
    }
}

#[cfg(test)]
mod tests;

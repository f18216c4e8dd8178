//! The shared state store (`state_store = redis`): a Redis or Valkey server,
//! plain or behind Sentinels, that every server of a farm uses, so that a code,
//! a State and a lockout count hold across the farm.
//!
//! Keys, all under `{prefix}:`
//! - `tokens:{user}`: a hash, `t:{serial}` the last TOTP step taken, `h:{serial}`
//!   the next HOTP counter. It does not expire: an HOTP counter forgotten would
//!   let used codes in again. It holds one field per token, overwritten in place.
//! - `lock:{user}`: a hash, `f` failures and `u` locked until; it expires a day
//!   after the last failure, or a day after the lock ends.
//! - `state:{hex id}`: an answered challenge State, the user's name as value;
//!   it expires when the State does.
//! - `answered:{user}`: the user's answered States not yet expired (a sorted set
//!   scored by expiry), which bounds them as the journal does; it expires with
//!   the last of them.
//! - `push:{login}`: the request id of the push a login waits for (`login` is
//!   an HMAC under a key derived from the State key: nothing of the password
//!   leaves the server); it expires `push.wait + 2 × push.timeout` after the
//!   push was registered, when every re-send of the login has ended. Under the
//!   same kind of name (a keyed digest of the provider's push id), the token of
//!   the server that first saw that push end, which counts it, for as long.
//! - `count:push:{user}`, `count:code:{user}`: pushes started and codes sent
//!   in the current `limits.window`, which they expire with.

mod connection;
mod scripts;

use std::collections::HashMap;
use std::sync::Mutex;

use redis::{Connection, RedisError};

use self::connection::Connector;
use self::scripts::Scripts;
use super::journal::{LockState, TokenState};
use super::state_store::{Claim, FailureCount, StateStore, StoreError, Take};
use crate::config::RedisSettings;
use crate::fast_map::FastMap;

/// How long a failure count outlives the last failure (or the lock).
const FAILURE_MEMORY: u64 = 24 * 3600;
/// Answered States one user may hold until they expire: the journal's bound
/// (journal/append.rs), so that a user with a valid password cannot fill Redis.
const MAX_ANSWERED_PER_USER: u32 = 1_000;
/// Users whose state is kept between a read and the checks that follow it;
/// past this the table starts again empty (it is a cache, Redis is the truth).
const MAX_SNAPSHOTS: usize = 10_000;

/// What one round trip read of a user: the lockout and every token's replay state.
#[derive(Clone, Default)]
struct Snapshot {
    lock: LockState,
    /// By serial; a user has a token or three, so a list (no table to build per user).
    tokens: Vec<(String, TokenState)>,
}

impl Snapshot {
    fn token(&self, serial: &str) -> Option<TokenState> {
        self.tokens.iter().find(|(known, _)| known == serial).map(|(_, state)| *state)
    }
}

pub struct RedisStore {
    connector: Connector,
    scripts: Scripts,
    /// foldhash, as the journal's table: SipHash's resistance to chosen keys buys
    /// nothing in a table cleared whenever it reaches MAX_SNAPSHOTS.
    snapshots: Mutex<FastMap<String, Snapshot>>,
}

impl RedisStore {
    /// Times each operation in `counters` (`call="redis"`), a failed one counted too.
    pub fn meter(&mut self, counters: &'static crate::stats::Counters) {
        counters.uses(crate::stats::Call::Redis);
        self.connector.counters = Some(counters);
    }

    /// Checks `ca_file` and `ca_path` now (a start-up error names them); connects
    /// on first use, so that a Redis down while FreeRADIUS starts costs requests,
    /// not the start.
    pub fn open(settings: RedisSettings) -> Result<RedisStore, (String, String)> {
        let mut ca: Option<Vec<u8>> = None;
        let sources = settings.ca.as_deref().cloned().unwrap_or_default();
        if let Some(path) = &sources.file {
            let pem = std::fs::read(path)
                .map_err(|e| ("redis.ca_file".to_string(), format!("cannot read {}: {e}", path.display())))?;
            if !is_pem_certificate(&pem) {
                return Err(("redis.ca_file".to_string(), "holds no PEM certificate".to_string()));
            }
            ca.get_or_insert_with(Vec::new).extend_from_slice(&pem);
        }
        if let Some(dir) = &sources.path {
            let pems = certificates_in(dir).map_err(|e| ("redis.ca_path".to_string(), e))?;
            let all = ca.get_or_insert_with(Vec::new);
            for pem in pems {
                all.push(b'\n');
                all.extend_from_slice(&pem);
            }
        }
        Ok(RedisStore { connector: Connector::new(settings, ca), scripts: Scripts::new(), snapshots: Mutex::default() })
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        // Pushed rather than format!()ed: two or three keys a login.
        let prefix = &self.connector.settings().prefix;
        let mut key = String::with_capacity(prefix.len() + kind.len() + rest.len() + 2);
        for part in [prefix.as_str(), ":", kind, ":", rest] {
            key.push_str(part);
        }
        key
    }

    /// Merges a user's lockout state from elsewhere (moving a journal into
    /// Redis) into the one in Redis: the larger failure count and the later lock
    /// end win, so that moving again never lowers what the servers counted; it
    /// expires as `record_failure` would have it.
    pub fn set_lock(&self, user: &str, lock: LockState, now: u64) -> Result<(), StoreError> {
        if lock == LockState::default() {
            return Ok(());
        }
        let key = self.key("lock", user);
        let memory = lock.locked_until.saturating_sub(now) + FAILURE_MEMORY;
        let (failures, locked_until): (u32, u64) = self.claim(|| {
            let mut call = evalsha(self.scripts.merge_lock.get_hash());
            call.arg(1).arg(&key).arg(lock.failures).arg(lock.locked_until).arg(memory);
            call
        })?;
        self.remember(user, |s| s.lock = LockState { failures, locked_until });
        Ok(())
    }

    fn remember(&self, user: &str, update: impl FnOnce(&mut Snapshot)) {
        let mut all = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= MAX_SNAPSHOTS && !all.contains_key(user) {
            all.clear();
        }
        match all.get_mut(user) {
            Some(known) => update(known),
            None => update(all.entry(user.to_string()).or_default()),
        }
    }

    /// Reads a user's snapshot in place (no copy of its tables), or None.
    fn in_snapshot<T>(&self, user: &str, read: impl FnOnce(&Snapshot) -> Option<T>) -> Option<T> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner()).get(user).and_then(read)
    }

    /// Runs a claim's command, then WAIT for `wait_replicas` when set, in one
    /// round trip: a claim that did not reach them in time is an error, so that
    /// the login it would accept is refused rather than lost in a failover.
    fn claim<T: redis::FromRedisValue>(&self, build: impl Fn() -> redis::Cmd) -> Result<T, StoreError> {
        self.claim_until(self.connector.deadline(), build)
    }

    /// [`RedisStore::claim`] before a deadline that several claims share.
    fn claim_until<T: redis::FromRedisValue>(
        &self,
        deadline: std::time::Instant,
        build: impl Fn() -> redis::Cmd,
    ) -> Result<T, StoreError> {
        let settings = self.connector.settings();
        let wait = settings.wait_replicas;
        // Half the bound, so that WAIT's own answer arrives within the read timeout.
        let wait_ms = (settings.timeout.as_millis() as u64 / 2).max(1);
        let (answer, replicas) = self.connector.run_until(deadline, |con: &mut Connection| {
            let claim = build();
            if wait == 0 {
                // Sent as itself: a pipeline would wrap the command and its answer.
                return claim.query::<T>(con).map(|t| (t, 0));
            }
            redis::pipe().add_command(claim).cmd("WAIT").arg(wait).arg(wait_ms).query::<(T, u32)>(con)
        })?;
        if replicas < wait {
            return Err(format!(
                "the claim reached {replicas} of the {wait} replicas of wait_replicas within timeout_ms"
            ));
        }
        Ok(answer)
    }

    /// Counts a failure by compare and set, from this server's copy of the user's
    /// state: one round trip when it is current; a writer that changed the count
    /// meanwhile makes us start again from what it wrote. With `unless_locked`, a
    /// user locked at `now` (as Redis has it) is left as is. Bounded, as
    /// everything here: the tries share one deadline.
    fn count_failure(
        &self,
        user: &str,
        now: u64,
        max_failures: u32,
        duration: u64,
        unless_locked: bool,
    ) -> Result<FailureCount, StoreError> {
        let key = self.key("lock", user);
        let mut seen = self.cached_lock(user);
        let locked_at = if unless_locked { now } else { 0 };
        let deadline = self.connector.deadline();
        for _ in 0..8 {
            let next = seen.after_failure(now, max_failures, duration);
            let memory = next.locked_until.saturating_sub(now) + FAILURE_MEMORY;
            let answer: Vec<i64> = self.claim_until(deadline, || {
                let mut call = evalsha(self.scripts.swap_lock.get_hash());
                call.arg(1)
                    .arg(&key)
                    .arg(seen.failures)
                    .arg(seen.locked_until)
                    .arg(next.failures)
                    .arg(next.locked_until)
                    .arg(memory)
                    .arg(locked_at);
                call
            })?;
            match answer.as_slice() {
                [1] => {
                    self.remember(user, |s| s.lock = next);
                    return Ok(FailureCount::Counted(next));
                }
                [0, failures, until] => {
                    seen = LockState { failures: *failures as u32, locked_until: *until as u64 };
                }
                [-1, failures, until] if unless_locked => {
                    let lock = LockState { failures: *failures as u32, locked_until: *until as u64 };
                    self.remember(user, |s| s.lock = lock);
                    return Ok(FailureCount::Locked(lock));
                }
                _ => return Err("unexpected answer to the lockout update".to_string()),
            }
        }
        Err("the failure count kept changing under this update (8 tries)".to_string())
    }

    fn raise(&self, user: &str, field: String, value: u64) -> Result<bool, StoreError> {
        let key = self.key("tokens", user);
        let raised: i64 = self.claim(|| {
            let mut call = evalsha(self.scripts.raise.get_hash());
            call.arg(1).arg(&key).arg(&field).arg(value);
            call
        })?;
        Ok(raised == 1)
    }
}

/// An EVALSHA of `hash`, its keys and arguments to follow, with room for them:
/// a command built from empty buffers grows them several times a login.
fn evalsha(hash: &str) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(12, 256);
    cmd.arg("EVALSHA").arg(hash);
    cmd
}

/// Changes a token's entry in a snapshot, made when missing (no allocation when not).
fn update_token(tokens: &mut Vec<(String, TokenState)>, serial: &str, update: impl FnOnce(&mut TokenState)) {
    match tokens.iter_mut().find(|(known, _)| known == serial) {
        Some((_, known)) => update(known),
        None => {
            let mut state = TokenState::default();
            update(&mut state);
            tokens.push((serial.to_string(), state));
        }
    }
}

fn is_pem_certificate(pem: &[u8]) -> bool {
    String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----")
}

/// The PEM certificates of the files in `dir` (others, such as CRLs, are left
/// out); none at all is an error, as a `ca_path` that trusts nothing is a mistake.
fn certificates_in(dir: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        // Followed: c_rehash's names are links to the certificates.
        let Ok(pem) = std::fs::read(entry.path()) else { continue };
        if is_pem_certificate(&pem) {
            found.push(pem);
        }
    }
    if found.is_empty() {
        return Err(format!("{} holds no PEM certificate", dir.display()));
    }
    Ok(found)
}

fn read_user(con: &mut Connection, tokens_key: &str, lock_key: &str) -> Result<Snapshot, RedisError> {
    let (fields, (failures, until)): (HashMap<String, u64>, (Option<u32>, Option<u64>)) =
        redis::pipe().hgetall(tokens_key).cmd("HMGET").arg(lock_key).arg("f").arg("u").query(con)?;
    let mut snapshot = Snapshot {
        lock: LockState { failures: failures.unwrap_or(0), locked_until: until.unwrap_or(0) },
        ..Default::default()
    };
    for (field, value) in fields {
        if let Some(serial) = field.strip_prefix("t:") {
            update_token(&mut snapshot.tokens, serial, |t| t.last_step = Some(value));
        } else if let Some(serial) = field.strip_prefix("h:") {
            update_token(&mut snapshot.tokens, serial, |t| t.next_counter = value);
        }
    }
    Ok(snapshot)
}

impl StateStore for RedisStore {
    fn describe(&self) -> String {
        let s = self.connector.settings();
        let first = &s.servers[0];
        match &s.sentinel_service {
            Some(service) => {
                format!("Redis store (primary \"{service}\" of Sentinel {}:{}, ...)", first.host, first.port)
            }
            None => format!("Redis store {}:{}", first.host, first.port),
        }
    }

    fn cached_lock(&self, user: &str) -> LockState {
        self.in_snapshot(user, |s| Some(s.lock)).unwrap_or_default()
    }

    fn current_lock(&self, user: &str) -> Result<LockState, StoreError> {
        let (tokens_key, lock_key) = (self.key("tokens", user), self.key("lock", user));
        let snapshot = self.connector.run(|con| read_user(con, &tokens_key, &lock_key))?;
        let lock = snapshot.lock;
        self.remember(user, |s| *s = snapshot);
        Ok(lock)
    }

    fn token(&self, user: &str, serial: &str) -> TokenState {
        self.in_snapshot(user, |s| s.token(serial)).unwrap_or_default()
    }

    fn claim_totp_step(&self, user: &str, serial: &str, step: u64) -> Result<bool, StoreError> {
        let taken = self.raise(user, format!("t:{serial}"), step)?;
        if taken {
            self.remember(user, |s| update_token(&mut s.tokens, serial, |t| t.last_step = Some(step)));
        }
        Ok(taken)
    }

    fn checks_lock_in_claims(&self) -> bool {
        true
    }

    fn take_unless_locked(&self, user: &str, claim: Claim<'_>, now: u64) -> Result<Take, StoreError> {
        let (tokens, lock) = (self.key("tokens", user), self.key("lock", user));
        let (field, value) = match claim {
            Claim::TotpStep { serial, step } => (format!("t:{serial}"), step),
            Claim::HotpCounter { serial, next } => (format!("h:{serial}"), next),
            Claim::Nothing => (String::new(), 0),
        };
        let answer: Vec<i64> = self.claim(|| {
            let mut call = evalsha(self.scripts.take_unless_locked.get_hash());
            call.arg(2).arg(&tokens).arg(&lock).arg(&field).arg(value).arg(now);
            call
        })?;
        match answer.as_slice() {
            [1] => {
                self.remember(user, |s| {
                    s.lock = LockState::default();
                    match claim {
                        Claim::TotpStep { serial, step } => {
                            update_token(&mut s.tokens, serial, |t| t.last_step = Some(step))
                        }
                        Claim::HotpCounter { serial, next } => {
                            update_token(&mut s.tokens, serial, |t| t.next_counter = next)
                        }
                        Claim::Nothing => {}
                    }
                });
                Ok(Take::Taken)
            }
            [0] => Ok(Take::Used),
            [-1, failures, until] => {
                let lock = LockState { failures: *failures as u32, locked_until: *until as u64 };
                self.remember(user, |s| s.lock = lock);
                Ok(Take::Locked(lock))
            }
            _ => Err("unexpected answer to the claim of an accepted login".to_string()),
        }
    }

    fn claim_hotp_counter(&self, user: &str, serial: &str, next_counter: u64) -> Result<bool, StoreError> {
        let taken = self.raise(user, format!("h:{serial}"), next_counter)?;
        if taken {
            self.remember(user, |s| update_token(&mut s.tokens, serial, |t| t.next_counter = next_counter));
        }
        Ok(taken)
    }

    fn record_failure(&self, user: &str, now: u64, max_failures: u32, duration: u64) -> Result<LockState, StoreError> {
        match self.count_failure(user, now, max_failures, duration, false)? {
            FailureCount::Counted(lock) => Ok(lock),
            FailureCount::Locked(_) => Err("unexpected answer to the lockout update".to_string()),
        }
    }

    fn record_failure_unless_locked(
        &self,
        user: &str,
        now: u64,
        max_failures: u32,
        duration: u64,
    ) -> Result<FailureCount, StoreError> {
        self.count_failure(user, now, max_failures, duration, true)
    }

    fn reset_failures(&self, user: &str) -> Result<(), StoreError> {
        if self.cached_lock(user) == LockState::default() {
            return Ok(());
        }
        let key = self.key("lock", user);
        self.connector.run(|con| redis::cmd("DEL").arg(&key).exec(con))?;
        self.remember(user, |s| s.lock = LockState::default());
        Ok(())
    }

    fn forget(&self, user: &str) -> Result<(), StoreError> {
        let keys = [self.key("tokens", user), self.key("lock", user)];
        let _: i64 = self.claim(|| {
            let mut call = redis::cmd("DEL");
            call.arg(&keys);
            call
        })?;
        self.remember(user, |s| *s = Snapshot::default());
        Ok(())
    }

    fn use_state_once(&self, user: &str, id: &[u8; 16], expires: u64, now: u64) -> Result<bool, StoreError> {
        let hex = data_encoding::HEXLOWER.encode(id);
        let (key, held_key) = (self.key("state", &hex), self.key("answered", user));
        let seconds = expires.saturating_sub(now).max(1);
        let answer: Vec<i64> = self.claim(|| {
            let mut call = evalsha(self.scripts.use_state.get_hash());
            call.arg(2)
                .arg(&key)
                .arg(&held_key)
                .arg(user)
                .arg(seconds)
                .arg(expires)
                .arg(now)
                .arg(MAX_ANSWERED_PER_USER)
                .arg(&hex);
            call
        })?;
        match answer.as_slice() {
            [1] => Ok(true),
            [0] => Ok(false),
            // Worded as the journal says it: a store failure, so the login fails closed.
            [-1, held] => Err(format!(
                "\"{user}\" already holds {held} answered challenge States that have not expired (the most \
                 one user may): a flood of challenge answers; this one is refused until some expire"
            )),
            _ => Err("unexpected answer to the use of a State".to_string()),
        }
    }

    fn join_push(&self, login: &str, request_id: &str, ttl: u64) -> Result<Option<String>, StoreError> {
        let key = self.key("push", login);
        let (first, registered): (i64, String) = self.claim(|| {
            let mut call = evalsha(self.scripts.join.get_hash());
            call.arg(1).arg(&key).arg(request_id).arg(ttl.max(1));
            call
        })?;
        Ok((first != 1 && !registered.is_empty()).then_some(registered))
    }

    fn claim_login(&self, login: &str, ttl: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key("login", login);
        let (first, value): (i64, Vec<u8>) = self.claim(|| {
            let mut call = evalsha(self.scripts.claim_login.get_hash());
            call.arg(1).arg(&key).arg(ttl.max(1));
            call
        })?;
        Ok((first != 1).then_some(value))
    }

    fn publish_login(&self, login: &str, value: &[u8], ttl: u64) -> Result<(), StoreError> {
        let key = self.key("login", login);
        let _: redis::Value = self.claim(|| {
            let mut call = redis::cmd("SET");
            call.arg(&key).arg(value).arg("EX").arg(ttl.max(1));
            call
        })?;
        Ok(())
    }

    fn read_login(&self, login: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key("login", login);
        self.connector.run(|con| redis::cmd("GET").arg(&key).query::<Option<Vec<u8>>>(con))
    }

    fn count_request(&self, kind: &str, user: &str, _now: u64, window: u64) -> Result<(u32, u64), StoreError> {
        let key = self.key(&format!("count:{kind}"), user);
        let (count, left): (u32, u64) = self.claim(|| {
            let mut call = evalsha(self.scripts.count.get_hash());
            call.arg(1).arg(&key).arg(window.max(1));
            call
        })?;
        Ok((count, left))
    }

    fn take_upkeep_error(&self) -> Option<StoreError> {
        None
    }
}

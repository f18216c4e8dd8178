//! What the module keeps between requests, behind one interface, so that the
//! engine does not know where it is kept: the local journal of one server (the
//! default, [`LocalStore`]), or a store that a farm of servers shares.
//!
//! Every change that decides a login is a claim the store makes atomically (a
//! code's step or counter, an answered State) or a read-modify-write it makes
//! whole (a failure counted toward the lockout), so that two requests, or two
//! servers, at the same instant cannot both win.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::journal::{JournalError, JournalOptions, LockState, SharedJournal, StateJournal, TokenState};
use crate::stats::{Counters, Failure};

/// A store that cannot answer: the caller fails closed (never "not used", never "not locked").
pub type StoreError = String;

/// How [`StateStore::take_unless_locked`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// The claim (a step, a counter) is the user's now; failures cleared.
    Taken,
    /// That step (or a later one), or that counter, was taken before: a replay.
    Used,
    /// The user is locked: nothing was taken.
    Locked(LockState),
}

/// What an accepted login takes from the store ([`StateStore::take_unless_locked`]),
/// besides the clearing of the user's failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim<'a> {
    /// A TOTP step of the token `serial`: later than every step taken before.
    TotpStep { serial: &'a str, step: u64 },
    /// The token's next HOTP counter: it only moves forward.
    HotpCounter { serial: &'a str, next: u64 },
    /// Nothing more (a code the module sent, single use through its State).
    Nothing,
}

/// How [`StateStore::record_failure_unless_locked`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCount {
    /// Counted: the user's state after it.
    Counted(LockState),
    /// The user was locked: nothing counted.
    Locked(LockState),
}

/// The state a login's decisions depend on, wherever it is kept.
pub trait StateStore: Send + Sync {
    /// Where the state is, for log lines: "state journal /var/lib/…".
    fn describe(&self) -> String;

    /// A user's failures and lockout as last read (no round trip): a cheap first look.
    fn cached_lock(&self, user: &str) -> LockState;

    /// A user's failures and lockout after catching up with every other writer.
    fn current_lock(&self, user: &str) -> Result<LockState, StoreError>;

    /// A token's replay state as of the last catching up (`current_lock` does it).
    fn token(&self, user: &str, serial: &str) -> TokenState;

    /// Takes TOTP `step` for the token: true only when it is later than every step
    /// taken before, here or by any writer sharing the store.
    fn claim_totp_step(&self, user: &str, serial: &str, step: u64) -> Result<bool, StoreError>;

    /// True when [`StateStore::take_unless_locked`] checks the lock as it claims,
    /// so that a TOTP code needs no read first: one round trip where
    /// `current_lock` then the claim cost two (a store over the network), one
    /// catching up where they cost two (the journal). The engine then checks a
    /// TOTP code without reading first.
    fn checks_lock_in_claims(&self) -> bool {
        false
    }

    /// The lock check and the claim of an accepted login as one step of the
    /// store; on success the user's failures are cleared. A lock counted
    /// anywhere before the claim refuses it, so that a right code racing the
    /// failure that locks (on another server, or in another process sharing a
    /// journal) is judged in the order the store saw them.
    fn take_unless_locked(&self, user: &str, claim: Claim<'_>, now: u64) -> Result<Take, StoreError>;

    /// Moves the token's next HOTP counter to `next_counter`: true only when that moves it forward.
    fn claim_hotp_counter(&self, user: &str, serial: &str, next_counter: u64) -> Result<bool, StoreError>;

    /// Counts one failure at `now` (see [`LockState::after_failure`]) and returns the
    /// user's state after it; no failure counted by another writer is lost.
    fn record_failure(&self, user: &str, now: u64, max_failures: u32, duration: u64) -> Result<LockState, StoreError>;

    /// Counts one failure at `now` unless the user is locked then (a locked user's
    /// guesses are refused as locked, not counted): the lock check and the count
    /// as one step, so that a wrong code costs what a right one does (one round
    /// trip to Redis when this server's copy of the count is current). This
    /// default, for a store that reads locally, does the two in turn.
    fn record_failure_unless_locked(
        &self,
        user: &str,
        now: u64,
        max_failures: u32,
        duration: u64,
    ) -> Result<FailureCount, StoreError> {
        let lock = self.current_lock(user)?;
        if lock.is_locked(now) {
            return Ok(FailureCount::Locked(lock));
        }
        self.record_failure(user, now, max_failures, duration).map(FailureCount::Counted)
    }

    /// Clears the user's failures (after a success).
    fn reset_failures(&self, user: &str) -> Result<(), StoreError>;

    /// Forgets everything kept of the user (mfa-admin remove), so that a later
    /// user of the same name starts clean.
    fn forget(&self, user: &str) -> Result<(), StoreError>;

    /// Records that `user` answered the challenge State `id`, which is valid
    /// until `expires`: true the first time, false when it was answered before,
    /// here or on any server sharing the store, before or after a restart.
    fn use_state_once(&self, user: &str, id: &[u8; 16], expires: u64, now: u64) -> Result<bool, StoreError>;

    /// Registers `request_id` under `login` (a keyed digest, nothing of a password
    /// in it) for `ttl` seconds, unless a request sharing the store registered
    /// one first: None when this request registered it, else what was registered
    /// first. So a NAS's re-send of a push login to another server finds the
    /// push's request id and joins that push instead of sending a second one; and
    /// of the servers that waited for one push, the first to see it end counts it.
    fn join_push(&self, login: &str, request_id: &str, ttl: u64) -> Result<Option<String>, StoreError>;

    /// Claims the login `login` (a keyed digest, nothing of a password in it)
    /// for `ttl` seconds, for the servers sharing the store: None when this
    /// request is the first, which decides the login and publishes what its
    /// re-sends on other servers need ([`StateStore::publish_login`]); else what
    /// the first published so far (empty while nothing).
    fn claim_login(&self, login: &str, ttl: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Publishes `value` (sealed by the caller) as what the login claimed by
    /// [`StateStore::claim_login`] has come to, kept `ttl` seconds from now.
    fn publish_login(&self, login: &str, value: &[u8], ttl: u64) -> Result<(), StoreError>;

    /// What the first request of `login` published so far (empty while nothing);
    /// None when no request holds the login (it expired, or was never claimed).
    fn read_login(&self, login: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Counts one more request of `kind` ("push", "code") for `user` in a fixed
    /// window of `window` seconds starting at the first: returns the count with
    /// this one and the seconds until the window ends.
    fn count_request(&self, kind: &str, user: &str, now: u64, window: u64) -> Result<(u32, u64), StoreError>;

    /// Upkeep that failed after a change that stood (a compaction), once, for the log.
    fn take_upkeep_error(&self) -> Option<StoreError>;

    /// The token file holds `users` users: a store that keeps them in memory makes
    /// room for them at once.
    fn expect_users(&self, _users: usize) {}
}

/// Requests counted per user and window in one process (the local store's rate limits).
#[derive(Default)]
pub struct RequestCounts {
    /// (kind, user) -> (count, end of the window).
    counts: Mutex<HashMap<(String, String), (u32, u64)>>,
}

impl RequestCounts {
    pub fn count(&self, kind: &str, user: &str, now: u64, window: u64) -> (u32, u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        // Only users past their first factor get here; forgetting ended windows keeps it small.
        if counts.len() >= 10_000 {
            counts.retain(|_, (_, end)| *end > now);
        }
        let entry = counts.entry((kind.to_string(), user.to_string())).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 = entry.0.saturating_add(1);
        (entry.0, entry.1 - now)
    }
}

/// The state journal of one server (shared by its module instances and mfa-admin).
pub struct LocalStore {
    journal: SharedJournal,
    requests: RequestCounts,
    /// With `stats { file }`: a journal write that fails counts as a store failure.
    counters: Option<&'static Counters>,
}

impl LocalStore {
    /// Opens (or creates) the journal at `path` and loads it, as the module holds
    /// it: the file lock kept between writes while nobody else opens the file.
    pub fn open(path: &Path, opts: JournalOptions) -> Result<LocalStore, JournalError> {
        Ok(LocalStore { journal: SharedJournal::open(path, opts)?, requests: RequestCounts::default(), counters: None })
    }

    /// The same for a brief user (mfa-admin): the lock taken for each write only.
    pub fn open_unleased(path: &Path, opts: JournalOptions) -> Result<LocalStore, JournalError> {
        let store = LocalStore::open(path, opts)?;
        // Before any write: the lease starts with the first one.
        store.journal.never_lease();
        Ok(store)
    }

    /// Counts the journal's failures in `counters` (`failures_total{kind="store"}`).
    pub fn meter(&mut self, counters: &'static Counters) {
        self.counters = Some(counters);
    }

    /// A journal error, for the engine's log line; counted when counting is on.
    fn failed(&self, e: JournalError) -> StoreError {
        if let Some(counters) = self.counters {
            counters.failed(Failure::Store);
        }
        e.to_string()
    }

    /// A change to the journal, synced as configured; its failure counted.
    fn write<T>(&self, change: impl FnOnce(&mut StateJournal) -> Result<T, JournalError>) -> Result<T, StoreError> {
        self.journal.write(change).map_err(|e| self.failed(e))
    }

    /// For reading; changes go through [`LocalStore::write`], which syncs them.
    fn journal(&self) -> MutexGuard<'_, StateJournal> {
        self.journal.lock()
    }
}

impl StateStore for LocalStore {
    fn describe(&self) -> String {
        format!("state journal {}", self.journal().path().display())
    }

    fn expect_users(&self, users: usize) {
        self.journal().reserve_users(users);
    }

    fn cached_lock(&self, user: &str) -> LockState {
        self.journal().lock(user)
    }

    fn current_lock(&self, user: &str) -> Result<LockState, StoreError> {
        self.write(|j| j.refresh().map(|()| j.lock(user)))
    }

    fn token(&self, user: &str, serial: &str) -> TokenState {
        self.journal().token(user, serial)
    }

    fn claim_totp_step(&self, user: &str, serial: &str, step: u64) -> Result<bool, StoreError> {
        self.write(|j| j.claim_totp_step(user, serial, step))
    }

    fn claim_hotp_counter(&self, user: &str, serial: &str, next_counter: u64) -> Result<bool, StoreError> {
        self.write(|j| j.claim_hotp_counter(user, serial, next_counter))
    }

    /// The journal checks the lock under the file lock it takes for the claim:
    /// one catch-up per accepted TOTP code instead of two.
    fn checks_lock_in_claims(&self) -> bool {
        true
    }

    fn take_unless_locked(&self, user: &str, claim: Claim<'_>, now: u64) -> Result<Take, StoreError> {
        self.write(|j| j.take_unless_locked(user, claim, now))
    }

    fn record_failure(&self, user: &str, now: u64, max_failures: u32, duration: u64) -> Result<LockState, StoreError> {
        self.write(|j| j.update_lock(user, |lock| lock.after_failure(now, max_failures, duration)))
    }

    fn record_failure_unless_locked(
        &self,
        user: &str,
        now: u64,
        max_failures: u32,
        duration: u64,
    ) -> Result<FailureCount, StoreError> {
        self.write(|j| {
            j.count_failure_unless_locked(user, Some(now), |lock| lock.after_failure(now, max_failures, duration))
        })
    }

    fn reset_failures(&self, user: &str) -> Result<(), StoreError> {
        self.write(|j| if j.lock(user).failures > 0 { j.unlock(user) } else { Ok(()) })
    }

    fn use_state_once(&self, user: &str, id: &[u8; 16], expires: u64, now: u64) -> Result<bool, StoreError> {
        self.write(|j| j.use_state_once(user, id, expires, now))
    }

    fn forget(&self, user: &str) -> Result<(), StoreError> {
        self.write(|j| j.forget(user))
    }

    /// One server: its re-sends join in memory (engine/push.rs), and the other
    /// server of a pair reaches the same push through the provider's idempotency
    /// key, which both compute alike within one `push.wait`.
    fn join_push(&self, _login: &str, _request_id: &str, _ttl: u64) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// One server: its re-sends join in memory (engine/joining.rs); every
    /// login is the first here.
    fn claim_login(&self, _login: &str, _ttl: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    /// Nobody else reads it.
    fn publish_login(&self, _login: &str, _value: &[u8], _ttl: u64) -> Result<(), StoreError> {
        Ok(())
    }

    fn read_login(&self, _login: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    /// Counted in memory: per server, and started again by a restart.
    fn count_request(&self, kind: &str, user: &str, now: u64, window: u64) -> Result<(u32, u64), StoreError> {
        Ok(self.requests.count(kind, user, now, window))
    }

    fn take_upkeep_error(&self) -> Option<StoreError> {
        self.journal.take_upkeep_error().map(|e| self.failed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn counters_only_move_forward_and_forget_clears_a_user() {
        let dir = TempDir::new("state-store-admin");
        let store = open(&dir.path().join("state.jsonl"));
        store.claim_hotp_counter("alice", "H1", 50).unwrap();
        assert_eq!(store.claim_hotp_counter("alice", "H1", 7), Ok(false), "a counter never goes back");
        store.current_lock("alice").unwrap();
        assert_eq!(store.token("alice", "H1").next_counter, 50);
        store.record_failure("alice", 100, 3, 60).unwrap();
        store.forget("alice").unwrap();
        assert_eq!(store.current_lock("alice"), Ok(LockState::default()));
        assert_eq!(store.token("alice", "H1").next_counter, 0);
    }

    fn open(path: &Path) -> Box<dyn StateStore> {
        Box::new(LocalStore::open(path, JournalOptions::default()).unwrap())
    }

    #[test]
    fn a_state_is_used_once_through_the_interface_and_after_reopening() {
        let dir = TempDir::new("state-store");
        let path = dir.path().join("state.jsonl");
        let store = open(&path);
        assert!(store.describe().starts_with("state journal ") && store.describe().ends_with("state.jsonl"));
        assert_eq!(store.use_state_once("alice", &[1; 16], 200, 100), Ok(true));
        assert_eq!(store.use_state_once("alice", &[1; 16], 200, 101), Ok(false));
        drop(store);
        assert_eq!(open(&path).use_state_once("alice", &[1; 16], 200, 150), Ok(false));
    }

    #[test]
    fn claims_and_the_lockout_through_the_interface() {
        let dir = TempDir::new("state-store-claims");
        let path = dir.path().join("state.jsonl");
        let (one, two) = (open(&path), open(&path));
        assert_eq!(one.claim_totp_step("alice", "T1", 10), Ok(true));
        assert_eq!(two.claim_totp_step("alice", "T1", 10), Ok(false), "the other writer catches up first");
        assert_eq!(two.claim_hotp_counter("alice", "H1", 3), Ok(true));
        assert_eq!(one.current_lock("alice"), Ok(LockState::default()));
        assert_eq!(one.token("alice", "H1").next_counter, 3);
        // Failures from both add up; the third locks.
        assert_eq!(one.record_failure("bob", 100, 3, 60).unwrap().failures, 1);
        assert_eq!(two.record_failure("bob", 100, 3, 60).unwrap().failures, 2);
        let locked = one.record_failure("bob", 101, 3, 60).unwrap();
        assert_eq!(locked, LockState { failures: 3, locked_until: 161 });
        assert!(two.current_lock("bob").unwrap().is_locked(150));
        assert_eq!(two.cached_lock("bob").failures, 3);
        two.reset_failures("bob").unwrap();
        assert_eq!(one.current_lock("bob"), Ok(LockState::default()));
        assert_eq!(one.take_upkeep_error(), None);
    }

    #[test]
    fn requests_are_counted_per_kind_user_and_window() {
        let counts = RequestCounts::default();
        assert_eq!(counts.count("push", "alice", 100, 60), (1, 60));
        assert_eq!(counts.count("push", "alice", 130, 60), (2, 30));
        assert_eq!(counts.count("code", "alice", 130, 60), (1, 60));
        assert_eq!(counts.count("push", "bob", 130, 60), (1, 60));
        assert_eq!(counts.count("push", "alice", 160, 60), (1, 60), "a new window");
    }

    #[test]
    fn every_claim_is_taken_unless_locked_by_a_local_store() {
        let dir = TempDir::new("state-store-take");
        let store = open(&dir.path().join("state.jsonl"));
        let step = |step| Claim::TotpStep { serial: "T1", step };
        let counter = |next| Claim::HotpCounter { serial: "H1", next };
        store.record_failure("alice", 100, 3, 60).unwrap();
        assert_eq!(store.take_unless_locked("alice", step(10), 100), Ok(Take::Taken));
        assert_eq!(store.current_lock("alice"), Ok(LockState::default()), "a success clears the failures");
        assert_eq!(store.take_unless_locked("alice", step(10), 100), Ok(Take::Used));
        store.record_failure("alice", 100, 3, 60).unwrap();
        assert_eq!(store.take_unless_locked("alice", counter(1), 100), Ok(Take::Taken));
        assert_eq!(store.token("alice", "H1").next_counter, 1);
        assert_eq!(store.current_lock("alice"), Ok(LockState::default()));
        assert_eq!(store.take_unless_locked("alice", counter(1), 100), Ok(Take::Used));
        store.record_failure("alice", 100, 3, 60).unwrap();
        assert_eq!(store.take_unless_locked("alice", Claim::Nothing, 100), Ok(Take::Taken));
        assert_eq!(store.current_lock("alice"), Ok(LockState::default()));
        for _ in 0..3 {
            store.record_failure("alice", 100, 3, 60).unwrap();
        }
        let locked = Take::Locked(LockState { failures: 3, locked_until: 160 });
        for claim in [step(11), counter(2), Claim::Nothing] {
            assert_eq!(store.take_unless_locked("alice", claim, 120), Ok(locked), "{claim:?}");
        }
        assert_eq!(store.token("alice", "T1").last_step, Some(10), "nothing taken while locked");
        assert_eq!(store.token("alice", "H1").next_counter, 1);
        assert!(store.checks_lock_in_claims());
    }

    #[test]
    fn a_failure_is_counted_unless_locked_by_a_local_store() {
        let dir = TempDir::new("state-store-count");
        let store = open(&dir.path().join("state.jsonl"));
        let count = |now| store.record_failure_unless_locked("alice", now, 2, 60);
        assert_eq!(count(100), Ok(FailureCount::Counted(LockState { failures: 1, locked_until: 0 })));
        let locked = LockState { failures: 2, locked_until: 160 };
        assert_eq!(count(100), Ok(FailureCount::Counted(locked)), "the second locks");
        assert_eq!(count(120), Ok(FailureCount::Locked(locked)), "locked: nothing counted");
        assert_eq!(store.current_lock("alice"), Ok(locked));
        assert_eq!(count(160), Ok(FailureCount::Counted(LockState { failures: 1, locked_until: 0 })), "ran out");
    }

    #[test]
    fn every_login_is_the_first_in_a_local_store() {
        let dir = TempDir::new("state-store-logins");
        let store = open(&dir.path().join("state.jsonl"));
        assert_eq!(store.claim_login("L", 30), Ok(None));
        store.publish_login("L", b"sealed", 30).unwrap();
        assert_eq!(store.claim_login("L", 30), Ok(None), "the other servers are not here to join");
        assert_eq!(store.read_login("L"), Ok(None));
    }

    #[test]
    fn the_lockout_rule() {
        let fresh = LockState::default();
        assert_eq!(fresh.after_failure(10, 2, 30), LockState { failures: 1, locked_until: 0 });
        let locked = fresh.after_failure(10, 1, 30);
        assert_eq!(locked, LockState { failures: 1, locked_until: 40 });
        assert_eq!(locked.after_failure(20, 1, 30), LockState { failures: 2, locked_until: 40 }, "no extension");
        assert_eq!(
            locked.after_failure(40, 1, 30),
            LockState { failures: 1, locked_until: 70 },
            "ran out: fresh count"
        );
        assert_eq!(fresh.after_failure(10, 0, 30).locked_until, 0, "0 never locks");
    }

    #[test]
    fn a_journal_that_cannot_be_written_is_an_error_never_a_first_use() {
        let dir = TempDir::new("state-store-full");
        let path = dir.path().join("state.jsonl");
        let store = open(&path);
        // The journal replaced by a directory: appending fails.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(store.use_state_once("alice", &[2; 16], 200, 100).is_err());
        assert!(store.claim_totp_step("alice", "T1", 5).is_err());
        assert!(store.record_failure("alice", 100, 3, 60).is_err());
    }
}

//! What the journal describes, in memory: each token's replay state and each
//! user's failures and lockout, built by applying records in order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::fast_map::{FastMap, Name};

use super::record::{state_id, Record};
use crate::factor::state::TokenState;

/// Failed attempts and lockout of one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockState {
    pub failures: u32,
    /// Unix time until which the user is locked; 0 (or any past time) means not locked.
    pub locked_until: u64,
}

impl LockState {
    pub fn is_locked(&self, now: u64) -> bool {
        self.locked_until > now
    }

    /// The lockout rule, the same wherever the state is kept: one more failure at
    /// `now`; the `max_failures`-th locks for `duration` seconds (0 never locks),
    /// and a lock that has run out starts a fresh count.
    pub fn after_failure(self, now: u64, max_failures: u32, duration: u64) -> LockState {
        let mut lock = if self.locked_until != 0 && self.locked_until <= now { LockState::default() } else { self };
        lock.failures = lock.failures.saturating_add(1);
        if max_failures > 0 && lock.failures >= max_failures && lock.locked_until <= now {
            lock.locked_until = now + duration;
        }
        lock
    }
}

/// What one user holds, kept small and in one piece: a server holds one per user
/// who ever logged in, in one table with no allocation of its own for a user whose
/// name and serial are short (up to [`INLINE`](crate::fast_map::INLINE) bytes) and who has one token.
#[derive(Debug, Default)]
struct UserState {
    tokens: Tokens,
    lock: LockState,
}

/// A user's tokens: most have one (or a few, searched in order).
#[derive(Debug, Default)]
enum Tokens {
    #[default]
    None,
    One((Name, TokenState)),
    Many(Box<[(Name, TokenState)]>),
}

impl Tokens {
    fn as_slice(&self) -> &[(Name, TokenState)] {
        match self {
            Tokens::None => &[],
            Tokens::One(one) => std::slice::from_ref(one),
            Tokens::Many(many) => many,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [(Name, TokenState)] {
        match self {
            Tokens::None => &mut [],
            Tokens::One(one) => std::slice::from_mut(one),
            Tokens::Many(many) => many,
        }
    }

    fn get(&self, serial: &str) -> Option<&TokenState> {
        self.as_slice().iter().find(|(s, _)| s.as_bytes() == serial.as_bytes()).map(|(_, t)| t)
    }

    fn get_or_insert(&mut self, serial: &str) -> &mut TokenState {
        let at = match self.as_slice().iter().position(|(s, _)| s.as_bytes() == serial.as_bytes()) {
            Some(at) => at,
            None => {
                let new = (Name::new(serial), TokenState::default());
                *self = match std::mem::take(self) {
                    Tokens::None => Tokens::One(new),
                    Tokens::One(one) => Tokens::Many(Box::new([one, new])),
                    Tokens::Many(many) => {
                        let mut many = many.into_vec();
                        many.push(new);
                        Tokens::Many(many.into_boxed_slice())
                    }
                };
                self.as_slice().len() - 1
            }
        };
        &mut self.as_mut_slice()[at].1
    }
}

/// Every user with any state, and the States answered and not yet expired.
#[derive(Debug, Default)]
pub(super) struct States {
    users: FastMap<Name, UserState>,
    /// Answered State ids, with when each expires and who answered it.
    used: HashMap<[u8; 16], (u64, String)>,
    /// The same, soonest expiry first, so that forgetting the expired ones pops
    /// only what expired and never scans the table.
    used_by_expiry: BinaryHeap<Reverse<(u64, [u8; 16])>>,
    /// How many of `used` each user answered: one user's bound.
    used_by_user: HashMap<String, u32>,
    /// The latest time a caller gave: answered States that expired by then are
    /// left out of a compaction.
    now: u64,
}

impl States {
    /// The latest time a caller gave (see `now`).
    pub(super) fn now(&self) -> u64 {
        self.now
    }

    pub(super) fn token(&self, user: &str, serial: &str) -> TokenState {
        self.users.get(user.as_bytes()).and_then(|u| u.tokens.get(serial)).copied().unwrap_or_default()
    }

    pub(super) fn lock(&self, user: &str) -> LockState {
        self.users.get(user.as_bytes()).map(|u| u.lock).unwrap_or_default()
    }

    /// Users that have any state, sorted.
    pub(super) fn users(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.users.keys().map(Name::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The answered States not expired at `now`: id, expiry, who answered.
    pub(super) fn answered(&self, now: u64) -> Vec<([u8; 16], u64, String)> {
        let mut all: Vec<_> =
            self.used.iter().filter(|(_, (e, _))| *e > now).map(|(id, (e, u))| (*id, *e, u.clone())).collect();
        all.sort();
        all
    }

    /// Whether the State `id` was answered (and has not expired by `now`).
    pub(super) fn is_used(&self, id: &[u8; 16], now: u64) -> bool {
        self.used.get(id).is_some_and(|(expires, _)| *expires > now)
    }

    /// Forgets the answered States that expired by `now` (a State past its
    /// expiry is refused by its seal anyway).
    pub(super) fn forget_used_before(&mut self, now: u64) {
        self.now = self.now.max(now);
        while let Some(Reverse((expires, id))) = self.used_by_expiry.peek().copied() {
            if expires > now {
                break;
            }
            self.used_by_expiry.pop();
            if self.used.get(&id).is_some_and(|(e, _)| *e == expires) {
                if let Some((_, user)) = self.used.remove(&id) {
                    self.count_answered(&user, false);
                }
            }
        }
    }

    /// How many users have any state.
    pub(super) fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Room for `users` users in all, so that the table of users is allocated once
    /// instead of doubling as they first log in (each doubling leaves the old table
    /// behind as free memory that the process may keep).
    pub(super) fn reserve(&mut self, users: usize) {
        self.users.reserve(users.saturating_sub(self.users.len()));
    }

    pub(super) fn clear(&mut self) {
        self.users.clear();
        self.used.clear();
        self.used_by_expiry.clear();
        self.used_by_user.clear();
    }

    /// The answered States of `user` not yet expired.
    pub(super) fn answered_by(&self, user: &str) -> u32 {
        self.used_by_user.get(user).copied().unwrap_or(0)
    }

    fn count_answered(&mut self, user: &str, more: bool) {
        if more {
            *self.used_by_user.entry(user.to_owned()).or_insert(0) += 1;
        } else if let Some(n) = self.used_by_user.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.used_by_user.remove(user);
            }
        }
    }

    pub(super) fn apply(&mut self, record: &Record<'_>) {
        match *record {
            Record::Totp { u, s, v } => {
                let token = self.token_mut(u, s);
                token.last_step = Some(token.last_step.map_or(v, |last| last.max(v)));
            }
            Record::Hotp { u, s, v } => {
                let token = self.token_mut(u, s);
                token.next_counter = token.next_counter.max(v);
            }
            Record::Lock { u, f, until } => {
                self.user_mut(u).lock = LockState { failures: f, locked_until: until };
                self.drop_if_empty(u);
            }
            Record::Unlock { u } => {
                if let Some(state) = self.users.get_mut(u.as_bytes()) {
                    state.lock = LockState::default();
                    self.drop_if_empty(u);
                }
            }
            Record::Forget { u } => {
                self.users.remove(u.as_bytes());
            }
            Record::Used { u, s, v } => {
                // record() checked the id.
                if let Some(id) = state_id(s) {
                    if v > self.now && self.used.insert(id, (v, u.to_owned())).is_none() {
                        self.used_by_expiry.push(Reverse((v, id)));
                        self.count_answered(u, true);
                    }
                }
            }
        }
    }

    fn user_mut(&mut self, user: &str) -> &mut UserState {
        if user.len() <= crate::fast_map::INLINE {
            // An inline name costs a copy: one probe of the table, not three.
            return self.users.entry(Name::new(user)).or_default();
        }
        // Look up first: allocating a long key for every record would dominate loading.
        if !self.users.contains_key(user.as_bytes()) {
            self.users.insert(Name::new(user), UserState::default());
        }
        self.users.get_mut(user.as_bytes()).expect("just inserted")
    }

    fn token_mut(&mut self, user: &str, serial: &str) -> &mut TokenState {
        self.user_mut(user).tokens.get_or_insert(serial)
    }

    fn drop_if_empty(&mut self, user: &str) {
        if let Some(state) = self.users.get(user.as_bytes()) {
            if state.tokens.as_slice().is_empty() && state.lock == LockState::default() {
                self.users.remove(user.as_bytes());
            }
        }
    }

    /// The records that reproduce the current state, sorted for stable output.
    pub(super) fn snapshot(&self) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let mut count = 0;
        let mut push = |record: Record<'_>| {
            record.write_line(&mut out);
            count += 1;
        };
        let mut users: Vec<(&str, &UserState)> = self.users.iter().map(|(u, s)| (u.as_str(), s)).collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (user, state) in users {
            let mut tokens: Vec<(&str, &TokenState)> =
                state.tokens.as_slice().iter().map(|(s, t)| (s.as_str(), t)).collect();
            tokens.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (serial, token) in tokens {
                if let Some(step) = token.last_step {
                    push(Record::Totp { u: user, s: serial, v: step });
                }
                if token.next_counter > 0 {
                    push(Record::Hotp { u: user, s: serial, v: token.next_counter });
                }
            }
            if state.lock != LockState::default() {
                push(Record::Lock { u: user, f: state.lock.failures, until: state.lock.locked_until });
            }
        }
        let mut used: Vec<(&[u8; 16], &(u64, String))> =
            self.used.iter().filter(|(_, (expires, _))| *expires > self.now).collect();
        used.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (id, (expires, user)) in used {
            let hex = data_encoding::HEXLOWER.encode(id);
            push(Record::Used { u: user, s: &hex, v: *expires });
        }
        (out, count)
    }

    /// How many records a compaction writes: the live ones.
    pub(super) fn live_records(&self) -> usize {
        self.users
            .values()
            .map(|u| {
                let tokens: usize = u
                    .tokens
                    .as_slice()
                    .iter()
                    .map(|(_, t)| usize::from(t.last_step.is_some()) + usize::from(t.next_counter > 0))
                    .sum();
                tokens + usize::from(u.lock != LockState::default())
            })
            .sum::<usize>()
            + self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_set_state_and_the_snapshot_reproduces_it() {
        let mut states = States::default();
        for record in [
            Record::Totp { u: "alice", s: "T1", v: 7 },
            Record::Totp { u: "alice", s: "T1", v: 5 },
            Record::Hotp { u: "alice", s: "H1", v: 3 },
            Record::Lock { u: "bob", f: 2, until: 9 },
            Record::Lock { u: "carol", f: 1, until: 0 },
            Record::Unlock { u: "carol" },
            Record::Forget { u: "dave" },
        ] {
            states.apply(&record);
        }
        assert_eq!(states.token("alice", "T1"), TokenState { last_step: Some(7), next_counter: 0 });
        assert_eq!(states.token("alice", "H1").next_counter, 3);
        assert_eq!(states.lock("bob"), LockState { failures: 2, locked_until: 9 });
        assert_eq!(states.users(), ["alice", "bob"], "an unlocked user without tokens has no state");

        let (snapshot, count) = states.snapshot();
        assert_eq!(count as usize, states.live_records());
        assert_eq!(
            String::from_utf8(snapshot).unwrap(),
            "{\"k\":\"hotp\",\"u\":\"alice\",\"s\":\"H1\",\"v\":3}\n\
             {\"k\":\"totp\",\"u\":\"alice\",\"s\":\"T1\",\"v\":7}\n\
             {\"k\":\"lock\",\"u\":\"bob\",\"f\":2,\"until\":9}\n"
        );
        states.apply(&Record::Forget { u: "alice" });
        assert_eq!(states.token("alice", "T1"), TokenState::default());
        states.clear();
        assert!(states.users().is_empty());
    }

    /// Names and serials short enough to be kept inline and longer ones, users with
    /// one token and with several: looked up, changed and snapshotted alike.
    #[test]
    fn short_and_long_names_and_several_tokens_are_kept_alike() {
        let long = "a.user.whose.name.is.longer.than.twenty-two@example.org";
        let exactly = "abcdefghijklmnopqrstuv";
        assert_eq!(exactly.len(), crate::fast_map::INLINE);
        let mut states = States::default();
        for (u, s) in
            [(long, "T1"), (exactly, "TOTP-0123456789ABCDEFGHIJ"), ("bob", "T1"), ("bob", "T2"), ("bob", "T3")]
        {
            states.apply(&Record::Totp { u, s, v: 10 });
        }
        states.apply(&Record::Totp { u: "bob", s: "T2", v: 11 });
        states.apply(&Record::Hotp { u: "bob", s: "T4", v: 2 });
        assert_eq!(states.token(long, "T1").last_step, Some(10));
        assert_eq!(states.token(exactly, "TOTP-0123456789ABCDEFGHIJ").last_step, Some(10));
        assert_eq!(states.token(exactly, "TOTP-0123456789ABCDEFGHI"), TokenState::default());
        assert_eq!(states.token(&exactly[..21], "TOTP-0123456789ABCDEFGHIJ"), TokenState::default());
        assert_eq!(states.token("bob", "T2").last_step, Some(11));
        assert_eq!(states.token("bob", "T3").last_step, Some(10));
        assert_eq!(states.token("bob", "T4").next_counter, 2);
        assert_eq!(states.users(), ["a.user.whose.name.is.longer.than.twenty-two@example.org", exactly, "bob"]);
        let (snapshot, count) = states.snapshot();
        assert_eq!(count, 6);
        let mut again = States::default();
        for line in snapshot.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let raw = serde_json::from_slice::<super::super::record::RawRecord<'_>>(line).unwrap();
            again.apply(&raw.record().unwrap());
        }
        assert_eq!(again.snapshot().0, snapshot);
        states.apply(&Record::Forget { u: long });
        assert_eq!(states.token(long, "T1"), TokenState::default());
    }
}

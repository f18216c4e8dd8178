//! Joining re-sent logins. A NAS that gets no answer in time sends the login
//! again with a new RADIUS ID; while the first is still being decided (a round
//! trip to privacyIDEA or Duo, a push), the re-send waits for that decision
//! instead of sending the code (used up by then) or the push again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub(super) mod farm;

/// The key of a login: a hash of length-prefixed parts (so that no two lists of
/// parts collide), never kept or shown.
pub fn login_key(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Logins being decided now, by key; `T` is how one ends.
pub struct InProgress<T> {
    logins: Mutex<HashMap<[u8; 32], Arc<Login<T>>>>,
}

struct Login<T> {
    ending: Mutex<Ending<T>>,
    done: Condvar,
    /// Re-sends waiting for it (the tests look).
    joiners: AtomicUsize,
}

enum Ending<T> {
    Pending,
    Ended(T),
    /// The deciding request ended without a decision (a panic).
    Abandoned,
}

/// What a request is to the logins in progress.
pub enum Entry<'a, T: Clone> {
    /// It decides; re-sends with its key wait for it.
    First(First<'a, T>),
    /// The same login is being decided: wait for that.
    Joined(Joiner<T>),
}

impl<T: Clone> Default for InProgress<T> {
    fn default() -> Self {
        InProgress { logins: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> InProgress<T> {
    pub fn enter(&self, key: [u8; 32]) -> Entry<'_, T> {
        let mut logins = lock(&self.logins);
        if let Some(other) = logins.get(&key) {
            return Entry::Joined(Joiner(other.clone()));
        }
        let login =
            Arc::new(Login { ending: Mutex::new(Ending::Pending), done: Condvar::new(), joiners: AtomicUsize::new(0) });
        logins.insert(key, login.clone());
        Entry::First(First { logins: self, key, login, ending: None })
    }

    /// Re-sends waiting now, over every login in progress.
    #[cfg(test)]
    pub fn joiners(&self) -> usize {
        lock(&self.logins).values().map(|l| l.joiners.load(Ordering::SeqCst)).sum()
    }
}

/// The request that decides. However it ends (a panic included), the re-sends
/// that joined it are told and the login is forgotten.
pub struct First<'a, T: Clone> {
    logins: &'a InProgress<T>,
    key: [u8; 32],
    login: Arc<Login<T>>,
    ending: Option<T>,
}

impl<T: Clone> First<'_, T> {
    /// Ends the login with `ending`, for this request and the joined ones.
    pub fn end(mut self, ending: T) -> T {
        self.ending = Some(ending.clone());
        ending
    }
}

impl<T: Clone> Drop for First<'_, T> {
    fn drop(&mut self) {
        *lock(&self.login.ending) = match self.ending.take() {
            Some(ending) => Ending::Ended(ending),
            None => Ending::Abandoned,
        };
        self.login.done.notify_all();
        lock(&self.logins.logins).remove(&self.key);
    }
}

/// A re-send of a login in progress.
pub struct Joiner<T>(Arc<Login<T>>);

impl<T: Clone> Joiner<T> {
    /// How the login ended; None when it did not within `bound`, or ended
    /// without a decision.
    pub fn wait(self, bound: Duration) -> Option<T> {
        self.0.joiners.fetch_add(1, Ordering::SeqCst);
        let ending = lock(&self.0.ending);
        let (ending, _) = self
            .0
            .done
            .wait_timeout_while(ending, bound, |e| matches!(e, Ending::Pending))
            .unwrap_or_else(|p| p.into_inner());
        match &*ending {
            Ending::Ended(t) => Some(t.clone()),
            Ending::Pending | Ending::Abandoned => None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resend_gets_the_first_ending_and_the_login_is_then_forgotten() {
        let logins: InProgress<u32> = InProgress::default();
        let key = login_key(&[b"alice", b"nas"]);
        let Entry::First(first) = logins.enter(key) else { panic!("the first request decides") };
        let Entry::Joined(joiner) = logins.enter(key) else { panic!("a re-send joins") };
        let waiting = std::thread::spawn(move || joiner.wait(Duration::from_secs(10)));
        while logins.joiners() == 0 {
            std::thread::yield_now();
        }
        assert_eq!(first.end(7), 7);
        assert_eq!(waiting.join().unwrap(), Some(7));
        assert!(matches!(logins.enter(key), Entry::First(_)), "an ended login is forgotten");
    }

    #[test]
    fn an_abandoned_or_slow_login_gives_the_joiner_nothing() {
        let logins: InProgress<u32> = InProgress::default();
        let key = login_key(&[b"bob"]);
        let first = logins.enter(key);
        let Entry::Joined(joiner) = logins.enter(key) else { panic!("a re-send joins") };
        let Entry::Joined(slow) = logins.enter(key) else { panic!("a re-send joins") };
        assert_eq!(slow.wait(Duration::from_millis(10)), None, "not ended within the bound");
        drop(first); // as a panic would
        assert_eq!(joiner.wait(Duration::from_secs(10)), None);
    }

    #[test]
    fn keys_do_not_collide_across_part_boundaries() {
        assert_ne!(login_key(&[b"ab", b"c"]), login_key(&[b"a", b"bc"]));
        assert_eq!(login_key(&[b"ab", b"c"]), login_key(&[b"ab", b"c"]));
    }
}

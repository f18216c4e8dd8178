//! Code checks of one user, one at a time in this process. The lockout counts a
//! failure after the code is checked, so guesses for one user checked at once
//! would all be checked at `max_failures - 1`; one at a time, exactly
//! `max_failures` guesses reach the verifier before the lock. Striped, so that
//! other users (bar a collision) never wait for each other.

use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

/// Stripes: far more than FreeRADIUS's threads, so that collisions are rare.
const STRIPES: usize = 256;

pub(super) struct UserGates {
    stripes: Vec<Mutex<()>>,
}

impl UserGates {
    pub fn new() -> UserGates {
        UserGates { stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }
    }

    /// Held while `user`'s code is checked and its outcome recorded.
    pub fn enter(&self, user: &str) -> MutexGuard<'_, ()> {
        // A fixed seed, as std's DefaultHasher::new() had: the same stripe for a name in
        // every run (the test below relies on alice's and bob's differing).
        let hash = foldhash::fast::FixedState::with_seed(0).hash_one(user);
        let stripe = &self.stripes[(hash as usize) % STRIPES];
        // A panic while holding it left nothing half done (the store's writes are whole).
        stripe.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn one_user_at_a_time_and_others_alongside() {
        let gates = Arc::new(UserGates::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gates, inside, most) = (gates.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _gate = gates.enter("alice");
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        let _alice = gates.enter("alice");
        // Another user is not held up by alice (different stripe for these two names).
        let _bob = gates.enter("bob");
    }
}

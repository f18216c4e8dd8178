//! The table of States already answered on this node: each State is accepted
//! once, and the table outlives a HUP that rebuilds the module instance.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The ids of States already answered on this node, kept until they expire
/// (after that, `unseal` refuses the State anyway). Thread-safe.
pub struct UsedStates {
    capacity: usize,
    inner: Mutex<Used>,
}

#[derive(Default)]
struct Used {
    ids: HashMap<[u8; 16], u64>,
    /// The same entries, soonest expiry first: purging pops only what expired,
    /// so each entry costs O(log n) once and no call scans the table.
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 16])>>,
}

impl fmt::Debug for UsedStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = self.lock().ids.len();
        f.debug_struct("UsedStates").field("capacity", &self.capacity).field("live", &live).finish()
    }
}

impl UsedStates {
    /// A table of at most `capacity` live entries (memory grows as needed).
    pub fn new(capacity: usize) -> Self {
        // Allocated whole at start (about 6 MB for 100,000): a table that doubled as
        // logins came would make memory grow in steps long after start-up.
        UsedStates {
            capacity,
            inner: Mutex::new(Used {
                ids: HashMap::with_capacity(capacity),
                by_expiry: BinaryHeap::with_capacity(capacity),
            }),
        }
    }

    /// The table of the module instance `instance` whose States `key_file` seals:
    /// the same table for every engine of that instance alive at once, so that a
    /// State answered just before a HUP rebuilt the instance stays answered after it.
    pub fn shared(instance: &str, key_file: &Path, capacity: usize) -> std::sync::Arc<UsedStates> {
        use std::sync::{Arc, OnceLock, Weak};
        /// (instance name, key file) to the table its live engines share.
        type Tables = HashMap<(String, PathBuf), Weak<UsedStates>>;
        static TABLES: OnceLock<Mutex<Tables>> = OnceLock::new();
        let mut tables = TABLES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        tables.retain(|_, table| table.strong_count() > 0);
        let name = (instance.to_string(), key_file.to_path_buf());
        if let Some(table) = tables.get(&name).and_then(Weak::upgrade) {
            return table;
        }
        let table = Arc::new(UsedStates::new(capacity));
        tables.insert(name, Arc::downgrade(&table));
        table
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        // A panic elsewhere cannot leave the table inconsistent in a way that lets
        // an id through: at worst a slot stays taken until its expiry.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `id` used. Returns false (refuse) if it was used before, if
    /// `expires` has already passed, or if the table is full of unexpired
    /// entries (fail closed: better a user retries than a State is replayed).
    #[must_use]
    pub fn use_once(&self, id: [u8; 16], expires: u64, now: u64) -> bool {
        if now > expires {
            return false;
        }
        let mut used = self.lock();
        while let Some(&Reverse((when, old))) = used.by_expiry.peek() {
            if when >= now {
                break;
            }
            used.by_expiry.pop();
            if used.ids.get(&old) == Some(&when) {
                used.ids.remove(&old);
            }
        }
        if used.ids.contains_key(&id) || used.ids.len() >= self.capacity {
            return false;
        }
        used.by_expiry.push(Reverse((expires, id)));
        used.ids.insert(id, expires);
        true
    }

    /// Entries currently remembered (expired ones may linger until the next call).
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Barrier};

    use crate::challenge::test_support::{binding, dialogue, key, NOW};
    use crate::challenge::{seal, unseal};

    fn id(n: u32) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id
    }

    #[test]
    fn second_use_is_refused() {
        let used = UsedStates::new(10);
        assert!(used.use_once(id(1), NOW + 60, NOW));
        assert!(!used.use_once(id(1), NOW + 60, NOW));
        assert!(!used.use_once(id(1), NOW + 60, NOW + 60));
        assert!(used.use_once(id(2), NOW + 60, NOW));
    }

    #[test]
    fn already_expired_id_is_refused() {
        let used = UsedStates::new(10);
        assert!(!used.use_once(id(1), NOW - 1, NOW));
        assert!(used.is_empty());
    }

    #[test]
    fn full_table_refuses_until_entries_expire() {
        let used = UsedStates::new(3);
        assert!(used.use_once(id(1), NOW + 10, NOW));
        assert!(used.use_once(id(2), NOW + 20, NOW));
        assert!(used.use_once(id(3), NOW + 30, NOW));
        assert!(!used.use_once(id(4), NOW + 30, NOW), "full: fail closed");
        assert_eq!(used.len(), 3);
        // At NOW + 10 the first entry is still live (its State is still accepted).
        assert!(!used.use_once(id(4), NOW + 30, NOW + 10));
        // After it, the first entry is purged and its slot is free again.
        assert!(used.use_once(id(4), NOW + 30, NOW + 11));
        assert_eq!(used.len(), 3);
        assert!(!used.use_once(id(5), NOW + 30, NOW + 11));
        // Purging only drops the expired: the others stay refused.
        assert!(!used.use_once(id(2), NOW + 20, NOW + 15));
        assert!(used.use_once(id(5), NOW + 40, NOW + 31));
        assert_eq!(used.len(), 1);
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let used = UsedStates::new(0);
        assert!(!used.use_once(id(1), NOW + 10, NOW));
    }

    #[test]
    fn used_states_are_shared_between_threads() {
        let used = Arc::new(UsedStates::new(1000));
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (used, barrier) = (used.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..100).filter(|&n| used.use_once(id(n), NOW + 60, NOW)).count()
                })
            })
            .collect();
        let accepted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(accepted, 100, "each id accepted exactly once over all threads");
    }

    #[test]
    fn sealed_state_is_spent_once() {
        let k = key(1);
        let used = UsedStates::new(10);
        let state = seal(&k, &binding(), &dialogue());
        let (d, state_id) = unseal(&k, &binding(), NOW, &state).unwrap();
        assert!(used.use_once(state_id, d.expires, NOW));
        let (d, state_id) = unseal(&k, &binding(), NOW + 5, &state).unwrap();
        assert!(!used.use_once(state_id, d.expires, NOW + 5));
    }
}

//! What the module keeps between requests, behind one interface, so that the
//! engine does not know where it is kept: the local journal of one server (the
//! default, [`LocalStore`]), or a store that a farm of servers shares.
//!
//! Today the answered States go through the interface; the replay state of
//! tokens and the lockout are read and claimed on the journal directly
//! ([`LocalStore::journal`]) until they move behind it too.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::journal::{JournalError, JournalOptions, StateJournal};

/// A store that cannot answer: the caller fails closed (never "not used").
pub type StoreError = String;

/// The state a login's decisions depend on, wherever it is kept.
pub trait StateStore: Send + Sync {
    /// Where the state is, for log lines: "state journal /var/lib/…".
    fn describe(&self) -> String;

    /// Records that `user` answered the challenge State `id`, which is valid
    /// until `expires`: true the first time, false when it was answered before,
    /// here or on any server sharing the store, before or after a restart.
    fn use_state_once(&self, user: &str, id: &[u8; 16], expires: u64, now: u64) -> Result<bool, StoreError>;
}

/// The state journal of one server (shared by its module instances and mfa-admin).
pub struct LocalStore {
    journal: Mutex<StateJournal>,
}

impl LocalStore {
    /// Opens (or creates) the journal at `path` and loads it.
    pub fn open(path: &Path, opts: JournalOptions) -> Result<LocalStore, JournalError> {
        Ok(LocalStore { journal: Mutex::new(StateJournal::open(path, opts)?) })
    }

    /// The journal, for what is not behind [`StateStore`] yet.
    pub fn journal(&self) -> MutexGuard<'_, StateJournal> {
        // A panic while holding the lock leaves the journal consistent (each record
        // is one write), so a poisoned lock is still usable.
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StateStore for LocalStore {
    fn describe(&self) -> String {
        format!("state journal {}", self.journal().path().display())
    }

    fn use_state_once(&self, user: &str, id: &[u8; 16], expires: u64, now: u64) -> Result<bool, StoreError> {
        self.journal().use_state_once(user, id, expires, now).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn a_state_is_used_once_through_the_interface_and_after_reopening() {
        let dir = TempDir::new("state-store");
        let path = dir.path().join("state.jsonl");
        let store: Box<dyn StateStore> = Box::new(LocalStore::open(&path, JournalOptions::default()).unwrap());
        assert!(store.describe().starts_with("state journal ") && store.describe().ends_with("state.jsonl"));
        assert_eq!(store.use_state_once("alice", &[1; 16], 200, 100), Ok(true));
        assert_eq!(store.use_state_once("alice", &[1; 16], 200, 101), Ok(false));
        drop(store);
        let reopened = LocalStore::open(&path, JournalOptions::default()).unwrap();
        assert_eq!(reopened.use_state_once("alice", &[1; 16], 200, 150), Ok(false));
    }

    #[test]
    fn a_journal_that_cannot_be_written_is_an_error_never_a_first_use() {
        let dir = TempDir::new("state-store-full");
        let path = dir.path().join("state.jsonl");
        let store = LocalStore::open(&path, JournalOptions::default()).unwrap();
        // The journal replaced by a directory: appending fails.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(store.use_state_once("alice", &[2; 16], 200, 100).is_err());
    }
}

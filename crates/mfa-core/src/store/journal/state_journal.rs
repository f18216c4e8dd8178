//! The journal: the file, how far it has been read, and the state it describes.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::JournalError;
use super::file::open_file;
use super::lock::unlock_file;
use super::state::{LockState, States};
use crate::factor::state::TokenState;

#[derive(Debug, Clone, Copy)]
pub struct JournalOptions {
    /// fdatasync after each append: survives power loss, costs a disk flush.
    pub fsync: bool,
    /// Records appended (by anyone) before the file is compacted; 0 disables
    /// automatic compaction.
    pub compact_after: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { fsync: false, compact_after: 100_000 }
    }
}

/// The journal file and the state it describes. Not shared between threads by
/// itself: the module keeps it in a [`super::SharedJournal`].
#[derive(Debug)]
pub struct StateJournal {
    pub(super) path: PathBuf,
    pub(super) opts: JournalOptions,
    pub(super) file: File,
    /// (device, inode) of `file`, to notice that a compaction replaced the path.
    pub(super) file_id: (u64, u64),
    /// Bytes of `file` applied so far; always just after a newline (or 0).
    pub(super) offset: u64,
    /// Lines of `file` applied so far, for error messages.
    pub(super) lines: u64,
    /// Records applied since the last compaction: roughly the garbage in the file.
    pub(super) since_compaction: usize,
    pub(super) state: States,
    pub(super) compaction_error: Option<JournalError>,
    /// The size `lock_current` just saw, for the `read_new` that follows it.
    pub(super) locked_size: Option<u64>,
    /// Held by a [`super::SharedJournal`]: appends neither fdatasync nor compact
    /// here; the holder syncs them in groups and compacts on another thread.
    pub(super) shared: bool,
    /// The file lock is held between writes (`lease.rs`, only in a
    /// [`super::SharedJournal`]): no other writer can append meanwhile.
    pub(super) leased: bool,
    /// Appends since the holder last looked (with `shared`): what it syncs, and
    /// only a change that wrote anything starts a compaction (as inline).
    pub(super) appended: u64,
    /// The bytes of a login's claim, kept between claims: the claim allocates nothing.
    pub(super) claim_line: Vec<u8>,
}

impl StateJournal {
    /// Opens (or creates, mode 0600, with its directory) the journal and loads it.
    pub fn open(path: &Path, opts: JournalOptions) -> Result<Self, JournalError> {
        let (file, file_id) = open_file(path)?;
        let mut journal = StateJournal {
            path: path.to_path_buf(),
            opts,
            file,
            file_id,
            offset: 0,
            lines: 0,
            since_compaction: 0,
            state: States::default(),
            compaction_error: None,
            locked_size: None,
            shared: false,
            leased: false,
            appended: 0,
            claim_line: Vec::new(),
        };
        journal.lock_current()?;
        // Under the lock no writer is mid-line, so a partial last line is a
        // dead writer's and can be cut off.
        let loaded = journal.read_new(true);
        let _ = unlock_file(&journal.file);
        loaded?;
        journal.since_compaction = journal.garbage_estimate();
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn token(&self, user: &str, serial: &str) -> TokenState {
        self.state.token(user, serial)
    }

    pub fn lock(&self, user: &str) -> LockState {
        self.state.lock(user)
    }

    /// The answered States not expired at `now` (id, expiry, user), for a move to another store.
    pub fn answered_states(&self, now: u64) -> Vec<([u8; 16], u64, String)> {
        self.state.answered(now)
    }

    /// Makes room for the state of `users` users (those of the token file), once.
    pub fn reserve_users(&mut self, users: usize) {
        self.state.reserve(users);
    }

    /// Users that have any state, sorted (for listings).
    pub fn users(&self) -> Vec<&str> {
        self.state.users()
    }

    /// The records that reproduce the current state, sorted for stable output.
    pub(super) fn snapshot(&self) -> (Vec<u8>, u64) {
        self.state.snapshot()
    }

    /// Records in the file beyond those a compaction would keep.
    pub(super) fn garbage_estimate(&self) -> usize {
        (self.lines as usize).saturating_sub(self.state.live_records())
    }
}

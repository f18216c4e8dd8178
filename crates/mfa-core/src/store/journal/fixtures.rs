//! What the journal's unit tests share: a scratch directory, a journal in it.

use std::path::{Path, PathBuf};

use super::{JournalOptions, StateJournal, TokenState};
use crate::testutil::TempDir;

pub fn new_dir() -> TempDir {
    TempDir::new("journal")
}

impl TempDir {
    pub fn journal_path(&self) -> PathBuf {
        self.0.join("state").join("state.jsonl")
    }
}

pub fn open(path: &Path) -> StateJournal {
    StateJournal::open(path, JournalOptions::default()).unwrap()
}

pub fn totp(step: u64) -> TokenState {
    TokenState { last_step: Some(step), next_counter: 0 }
}

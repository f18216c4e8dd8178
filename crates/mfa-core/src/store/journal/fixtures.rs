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

/// Claims alice's next HOTP counter `tries` times, as the module does, and says
/// how many claims won (others may claim the same counter meanwhile).
pub fn claim_next_counters(journal: &super::SharedJournal, tries: u32) -> u64 {
    let mut won = 0;
    for _ in 0..tries {
        let claimed = journal.write(|j| {
            j.refresh()?;
            let next = j.token("alice", "H1").next_counter + 1;
            j.claim_hotp_counter("alice", "H1", next)
        });
        won += u64::from(claimed.unwrap());
    }
    won
}

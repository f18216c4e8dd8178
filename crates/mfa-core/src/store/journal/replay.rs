//! Loading: the records of the file applied in order, from where the last read
//! stopped; a torn last line waits (or, under the lock, is cut off), a corrupt
//! one is an error.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

use super::error::{io_error, JournalError};
use super::file::open_file;
use super::record::RawRecord;
use super::StateJournal;

impl StateJournal {
    /// Applies records other processes appended since our last read. Costs one
    /// fstat and one stat when nothing changed.
    pub fn refresh(&mut self) -> Result<(), JournalError> {
        if self.leased {
            // Nobody else can have written (see `lease.rs`).
            return Ok(());
        }
        let meta = self.file.metadata().map_err(io_error("inspect", &self.path))?;
        let size = meta.len();
        // Our file still has a name (nlink > 0) while no compaction replaced it and no
        // one deleted it: then the path needs no look of its own (one system call less).
        if meta.nlink() == 0 {
            match fs::metadata(&self.path) {
                Ok(meta) if (meta.dev(), meta.ino()) == self.file_id => {}
                Ok(_) => return self.reopen(),
                // Deleted: what we hold is the only copy; the next write restores the file.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_error("inspect", &self.path)(e)),
            }
        }
        if size == self.offset {
            return Ok(());
        }
        // Grown: new records. Shrunk in place (a compaction replaces the file instead):
        // damage, which read_new repairs under the lock.
        self.read_new(false)
    }

    /// Switches to the file now at `path` and rebuilds the state from it alone
    /// (a compacted file holds the complete state).
    pub(super) fn reopen(&mut self) -> Result<(), JournalError> {
        let (file, file_id) = open_file(&self.path)?;
        self.end_lease();
        self.file = file;
        self.file_id = file_id;
        self.offset = 0;
        self.lines = 0;
        self.state.clear();
        self.read_new(false)?;
        self.since_compaction = self.garbage_estimate();
        Ok(())
    }

    /// Reads and applies the complete lines after `offset`. With `locked`, a
    /// partial last line cannot be a write in progress, so it is truncated away.
    pub(super) fn read_new(&mut self, locked: bool) -> Result<(), JournalError> {
        // One fstat (or none, just after lock_current) instead of a seek and a read when
        // nothing was appended (most writes).
        let size = match self.locked_size.take() {
            Some(size) => size,
            None => self.file.metadata().map_err(io_error("inspect", &self.path))?.len(),
        };
        if size == self.offset {
            return Ok(());
        }
        if size < self.offset {
            if !locked {
                self.lock_current()?;
                let repaired = self.read_new(true);
                self.release();
                return repaired;
            }
            return self.repair_shrunk(size);
        }
        let mut buf = Vec::new();
        let mut reader = &self.file;
        reader
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| reader.read_to_end(&mut buf))
            .map_err(io_error("read", &self.path))?;
        let consumed = self.apply_lines(&buf)?;
        if locked && consumed < buf.len() {
            self.file.set_len(self.offset).map_err(io_error("truncate the torn last line of", &self.path))?;
        }
        Ok(())
    }

    /// Under the lock: the file is shorter than what we applied of it, truncated in
    /// place by someone (a compaction renames a new file instead). What it lost
    /// would let used codes be used again, and replaying what is left over the
    /// newer state would undo unlocks and forgets: the state in memory stands,
    /// and is written back whole (a compaction). The damage is reported through
    /// `take_compaction_error`, for a log line; failing to write it back is an error.
    fn repair_shrunk(&mut self, found: u64) -> Result<(), JournalError> {
        let read = self.offset;
        self.compact_locked()?;
        self.compaction_error = Some(JournalError::Shrunk { path: self.path.clone(), read, found });
        Ok(())
    }

    /// Applies each newline-terminated line; returns the bytes consumed.
    fn apply_lines(&mut self, buf: &[u8]) -> Result<usize, JournalError> {
        let mut consumed = 0;
        while let Some(len) = buf[consumed..].iter().position(|&b| b == b'\n') {
            let line = &buf[consumed..consumed + len];
            if !line.iter().all(u8::is_ascii_whitespace) {
                let record = serde_json::from_slice::<RawRecord<'_>>(line)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| raw.record().map(|r| self.state.apply(&r)));
                if let Err(reason) = record {
                    return Err(JournalError::Corrupt { path: self.path.clone(), line: self.lines + 1, reason });
                }
                self.since_compaction += 1;
            }
            consumed += len + 1;
            self.offset += len as u64 + 1;
            self.lines += 1;
        }
        Ok(consumed)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::io::Write;

    use super::super::fixtures::{new_dir, open, totp};
    use super::super::{JournalError, JournalOptions, LockState, StateJournal, TokenState};

    #[test]
    fn a_journal_truncated_in_place_is_written_back_from_memory() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut module = open(&path);
        module.set_totp_step("alice", "T1", 100).unwrap();
        module.set_lock("bob", LockState { failures: 2, locked_until: 0 }).unwrap();
        module.unlock("bob").unwrap();
        let before = fs::metadata(&path).unwrap().len();

        // Cut to the first record: replaying it over the newer state would be wrong too.
        let first = fs::read_to_string(&path).unwrap().find('\n').unwrap() as u64 + 1;
        OpenOptions::new().write(true).open(&path).unwrap().set_len(first).unwrap();
        module.refresh().unwrap();
        assert_eq!(module.token("alice", "T1"), totp(100));
        assert_eq!(module.lock("bob"), LockState::default());
        let notice = module.take_compaction_error().expect("the damage is reported").to_string();
        assert!(notice.contains(&format!("shrank in place from {before} to {first} bytes")), "{notice}");
        // Written back: a new reader sees it all.
        assert_eq!(open(&path).token("alice", "T1"), totp(100));

        // Emptied, then a claim of the used step: refused, under the lock.
        OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
        assert!(!module.claim_totp_step("alice", "T1", 100).unwrap());
        assert!(module.take_compaction_error().is_some());
        assert_eq!(open(&path).token("alice", "T1"), totp(100));
    }

    #[test]
    fn reopen_restores_exactly() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut j = StateJournal::open(&path, JournalOptions { fsync: true, compact_after: 0 }).unwrap();
        for i in 0..50u64 {
            j.set_totp_step(&format!("user{i}"), "T", i * 3).unwrap();
            j.set_hotp_counter(&format!("user{i}"), "H", i + 1).unwrap();
            if i % 7 == 0 {
                j.set_lock(&format!("user{i}"), LockState { failures: i as u32, locked_until: i * 10 }).unwrap();
            }
        }
        let before = j.snapshot().0;
        drop(j);
        let again = open(&path);
        assert_eq!(again.snapshot().0, before);
        assert_eq!(again.token("user7", "T"), totp(21));
        assert_eq!(again.token("user7", "H").next_counter, 8);
        assert_eq!(again.lock("user7"), LockState { failures: 7, locked_until: 70 });
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_off() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut j = open(&path);
        j.set_totp_step("alice", "T1", 10).unwrap();
        drop(j);
        let good_len = fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"k\":\"totp\",\"u\":\"alice\",\"s\":\"T1\",\"v\":9").unwrap();
        drop(f);

        let mut j = open(&path);
        assert_eq!(j.token("alice", "T1"), totp(10));
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
        j.set_totp_step("alice", "T1", 11).unwrap();
        drop(j);
        assert_eq!(open(&path).token("alice", "T1"), totp(11));
    }

    #[test]
    fn refresh_leaves_a_line_in_progress_for_later() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut reader = open(&path);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"k\":\"totp\",\"u\":\"a\",\"s\":\"T\",").unwrap();
        reader.refresh().unwrap();
        assert_eq!(reader.token("a", "T"), TokenState::default());
        f.write_all(b"\"v\":5}\n").unwrap();
        reader.refresh().unwrap();
        assert_eq!(reader.token("a", "T"), totp(5));
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error() {
        let dir = new_dir();
        let path = dir.journal_path();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        for bad in [
            "not json",
            "{\"k\":\"totp\",\"u\":\"a\",\"v\":1}",
            "{\"k\":\"teleport\",\"u\":\"a\"}",
            "{\"k\":\"hotp\",\"u\":\"a\",\"s\":\"H\",\"v\":-1}",
        ] {
            fs::write(
                &path,
                format!(
                    "{{\"k\":\"totp\",\"u\":\"a\",\"s\":\"T\",\"v\":1}}\n\n{bad}\n{{\"k\":\"unlock\",\"u\":\"a\"}}\n"
                ),
            )
            .unwrap();
            let err = StateJournal::open(&path, JournalOptions::default()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, JournalError::Corrupt { line: 3, .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()) && msg.contains("line 3"), "{msg}");
        }
        // Unknown extra fields are a newer writer's business, not corruption.
        fs::write(&path, "{\"k\":\"totp\",\"u\":\"a\",\"s\":\"T\",\"v\":4,\"why\":\"x\"}\n").unwrap();
        assert_eq!(open(&path).token("a", "T"), totp(4));
    }

    #[test]
    fn a_corrupt_line_from_another_writer_fails_refresh() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut j = open(&path);
        j.set_totp_step("a", "T", 1).unwrap();
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"garbage\n").unwrap();
        let err = j.refresh().unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { line: 2, .. }), "{err}");
        // Still failing closed on the next try, and on writes.
        assert!(j.refresh().is_err());
        assert!(j.set_totp_step("a", "T", 2).is_err());
    }

    #[test]
    // Load time is measured by bench/ (part 2), not asserted here: tests check behaviour.
    fn a_large_journal_loads_every_user() {
        let dir = new_dir();
        let path = dir.journal_path();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let users = if cfg!(debug_assertions) { 10_000 } else { 100_000 };
        let mut text = String::new();
        for i in 0..users {
            text.push_str(&format!(
                "{{\"k\":\"totp\",\"u\":\"user{i}\",\"s\":\"TOTP-{i:08X}\",\"v\":{}}}\n",
                56_000_000 + i
            ));
            text.push_str(&format!("{{\"k\":\"lock\",\"u\":\"user{i}\",\"f\":1,\"until\":0}}\n"));
        }
        fs::write(&path, text).unwrap();
        let j = open(&path);
        assert_eq!(j.token("user7", "TOTP-00000007"), totp(56_000_007));
        let last = users - 1;
        assert_eq!(j.token(&format!("user{last}"), &format!("TOTP-{last:08X}")), totp(56_000_000 + last));
    }
}

//! Compaction: the journal rewritten as the few records of the current state,
//! atomically (temporary file, fsync, rename), when enough records piled up or
//! when asked; writers holding the old file notice and follow.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::error::{io_error, JournalError};
use super::record::RawRecord;
use super::state::States;
use super::StateJournal;
use crate::store::atomic::{self, AtomicError, NewFile, Owner, Step};

impl StateJournal {
    /// Rewrites the journal as the minimal records for the current state.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        self.lock_current()?;
        let result = self.read_new(true).and_then(|()| self.compact_locked());
        self.release();
        result
    }

    /// The error of the last failed automatic compaction, if any, or the damage
    /// last found and repaired (a journal truncated in place, written back from
    /// memory). Neither fails the call that met it; the caller logs it.
    pub fn take_compaction_error(&mut self) -> Option<JournalError> {
        self.compaction_error.take()
    }

    /// Under the file lock, after a write: compacts when enough records piled up. A
    /// failure is kept for `take_compaction_error` and not retried on every write.
    pub(super) fn compact_if_due(&mut self) {
        if !self.shared && self.compaction_due() {
            if let Err(e) = self.compact_locked() {
                self.since_compaction = 0;
                self.compaction_error = Some(e);
            }
        }
    }

    pub(super) fn compaction_due(&self) -> bool {
        self.opts.compact_after > 0 && self.since_compaction >= self.opts.compact_after
    }

    /// Writes the snapshot to a temporary file and renames it over the journal,
    /// keeping the journal's owner (mfa-admin running as root must not leave a
    /// journal that the FreeRADIUS user can no longer open) and mode.
    /// The caller holds the lock on the current file and has caught up.
    pub(super) fn compact_locked(&mut self) -> Result<(), JournalError> {
        let old = self.file.metadata().map_err(io_error("inspect", &self.path))?;
        let owner = Owner::Exactly { uid: old.uid(), gid: old.gid() };
        let failed = |e: AtomicError| compaction_error(&self.path, e);
        let mut copy = NewFile::create(&self.path, old.mode() & 0o7777, owner).map_err(failed)?;
        let (bytes, count) = self.snapshot();
        copy.write_all(&bytes).map_err(failed)?;
        let file_id = copy.id();
        let file = copy.rename_over().map_err(failed)?;
        // From here on the path is the new file, whatever else fails.
        self.file_id = file_id;
        self.file = file;
        // The lease was on the old file's lock, which went with it.
        self.leased = false;
        self.offset = bytes.len() as u64;
        self.lines = count;
        self.since_compaction = 0;
        atomic::sync_directory(&self.path).map_err(failed)
    }
}

/// A compaction in three steps, so that the rewrite itself holds no lock and
/// writers go on meanwhile (`SharedJournal` runs it on its own thread):
/// [`StateJournal::begin_compaction`] (an offset of the file, under the mutex only),
/// [`Snapshot::write`] (the state rebuilt from the file up to that offset, the
/// copy written and synced, no lock held) and
/// [`StateJournal::finish_compaction`] (under the file lock: the records appended
/// since copied after the snapshot, the copy renamed over the journal). The
/// records are idempotent "set" records, so snapshot + later records replay to
/// the same state as the whole file does.
pub(super) struct Snapshot {
    /// The file the snapshot describes, up to `offset` (`lines` lines).
    from: (u64, u64),
    offset: u64,
    lines: u64,
    /// The latest time a caller gave: answered States expired by then are left out.
    now: u64,
    /// Users with state then: the table the replay builds is allocated once.
    users: usize,
    /// A descriptor of that file (rebuilding the state from its first `offset`
    /// bytes needs no lock; copying or serialising the state in memory would
    /// hold the journal for tens of milliseconds at 100,000 users).
    file: File,
    mode: u32,
    owner: Owner,
}

pub(super) struct Written {
    from: (u64, u64),
    offset: u64,
    lines: u64,
    /// Records (`count`, `len` bytes) in the copy.
    count: u64,
    len: usize,
    copy: NewFile,
}

impl StateJournal {
    /// Step one: catch up (without the file lock: only whole lines are applied)
    /// and take the records of the current state.
    pub(super) fn begin_compaction(&mut self) -> Result<Snapshot, JournalError> {
        self.refresh()?;
        let old = self.file.metadata().map_err(io_error("inspect", &self.path))?;
        Ok(Snapshot {
            from: self.file_id,
            offset: self.offset,
            lines: self.lines,
            now: self.state.now(),
            users: self.state.user_count(),
            file: self.file.try_clone().map_err(io_error("open", &self.path))?,
            mode: old.mode() & 0o7777,
            owner: Owner::Exactly { uid: old.uid(), gid: old.gid() },
        })
    }

    /// Step three, under the file lock: unless someone else replaced the file
    /// meanwhile (then theirs stands and the copy is dropped), append what was
    /// written after the snapshot to the copy and rename it over the journal.
    pub(super) fn finish_compaction(&mut self, written: Written) -> Result<(), JournalError> {
        self.lock_current()?;
        let result = self.read_new(true).and_then(|()| self.finish_locked(written));
        self.release();
        result
    }

    fn finish_locked(&mut self, written: Written) -> Result<(), JournalError> {
        let Written { from, offset, lines, count, len, mut copy } = written;
        if self.file_id != from {
            return Ok(());
        }
        let failed = |e: AtomicError| compaction_error(&self.path, e);
        let mut tail = vec![0; (self.offset - offset) as usize];
        self.file.read_exact_at(&mut tail, offset).map_err(io_error("read", &self.path))?;
        copy.write_all(&tail).map_err(failed)?;
        let file_id = copy.id();
        let file = copy.rename_over().map_err(failed)?;
        // From here on the path is the new file, whatever else fails.
        let tail_lines = self.lines - lines;
        self.file_id = file_id;
        self.file = file;
        // The lease was on the old file's lock, which went with it.
        self.leased = false;
        self.offset = (len + tail.len()) as u64;
        self.lines = count + tail_lines;
        self.since_compaction = tail_lines as usize;
        atomic::sync_directory(&self.path).map_err(failed)
    }
}

impl Snapshot {
    /// Step two, no lock held: the copy beside the journal, written and synced.
    pub(super) fn write(self, path: &Path) -> Result<Written, JournalError> {
        let failed = |e: AtomicError| compaction_error(path, e);
        let (bytes, count) = self.replay(path)?.snapshot();
        let mut copy = NewFile::create(path, self.mode, self.owner).map_err(failed)?;
        copy.write_all(&bytes).map_err(failed)?;
        copy.sync().map_err(failed)?;
        Ok(Written { from: self.from, offset: self.offset, lines: self.lines, count, len: bytes.len(), copy })
    }
}

impl Snapshot {
    /// The state the file held at `offset`: the same as the journal's then (it
    /// applied the same lines; what it forgot without a record, expired answered
    /// States, `now` leaves out again).
    fn replay(&self, path: &Path) -> Result<States, JournalError> {
        // Read in pieces, not whole: at 100,000 users the file is megabytes, and the
        // compaction's memory stays with the process as its high-water mark.
        const PIECE: usize = 1 << 20;
        let mut state = States::default();
        state.reserve(self.users);
        state.forget_used_before(self.now);
        let (mut at, mut line_no) = (0u64, 0u64);
        let mut buf: Vec<u8> = Vec::with_capacity(PIECE);
        while at < self.offset || !buf.is_empty() {
            let want = (self.offset - at).min(PIECE as u64) as usize;
            let start = buf.len();
            buf.resize(start + want, 0);
            self.file.read_exact_at(&mut buf[start..], at).map_err(io_error("read", path))?;
            at += want as u64;
            // Whole lines only; the rest waits for the next piece (the file up to
            // `offset` ends with a newline).
            let whole =
                if at == self.offset { buf.len() } else { buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) };
            for line in buf[..whole].split(|&b| b == b'\n') {
                line_no += 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let record = serde_json::from_slice::<RawRecord<'_>>(line)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| raw.record().map(|r| state.apply(&r)));
                if let Err(reason) = record {
                    return Err(JournalError::Corrupt { path: path.to_path_buf(), line: line_no, reason });
                }
            }
            // split() yields one piece after the last newline: not a line.
            line_no -= 1;
            buf.drain(..whole);
            if want == 0 {
                break;
            }
        }
        Ok(state)
    }
}

/// A failed step of a compaction, in the journal's words.
fn compaction_error(path: &Path, e: AtomicError) -> JournalError {
    let action = match e.step {
        Step::Name | Step::Create | Step::Inspect => "create a compacted copy of",
        Step::Own => "keep the owner of",
        Step::Mode => "keep the mode of",
        Step::Write | Step::Sync => "write a compacted copy of",
        Step::Rename | Step::Link => "replace",
        Step::SyncDirectory => "sync the directory of",
    };
    io_error(action, path)(e.source)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::super::fixtures::{new_dir, open, totp};
    use super::super::{JournalOptions, LockState, StateJournal};

    #[test]
    fn writers_follow_a_compaction_by_the_other() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut module = open(&path);
        let mut admin = open(&path);
        for step in 0..100 {
            module.set_totp_step("alice", "T1", step).unwrap();
        }
        module.set_lock("bob", LockState { failures: 1, locked_until: 77 }).unwrap();
        admin.refresh().unwrap();
        let old_inode = fs::metadata(&path).unwrap().ino();

        admin.compact().unwrap();
        assert_ne!(fs::metadata(&path).unwrap().ino(), old_inode);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);

        // The module's descriptor is on the old inode: refresh follows the path.
        module.refresh().unwrap();
        assert_eq!(module.token("alice", "T1"), totp(99));
        assert_eq!(module.lock("bob").locked_until, 77);

        admin.compact().unwrap();
        // A write (without refresh first) must land in the new file, not the old one.
        module.set_totp_step("alice", "T1", 100).unwrap();
        admin.refresh().unwrap();
        assert_eq!(admin.token("alice", "T1"), totp(100));
        assert_eq!(open(&path).token("alice", "T1"), totp(100));

        // And the compactor keeps appending to its new file that others read.
        admin.set_totp_step("alice", "T1", 101).unwrap();
        module.refresh().unwrap();
        assert_eq!(module.token("alice", "T1"), totp(101));
    }

    #[test]
    fn compaction_preserves_state_and_shrinks_the_file() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut j = open(&path);
        for i in 0..200u64 {
            j.set_totp_step("alice", "T1", i).unwrap();
            j.set_hotp_counter("bob", "H1", i).unwrap();
            j.set_lock("carol", LockState { failures: i as u32, locked_until: 0 }).unwrap();
        }
        j.set_lock("dave", LockState { failures: 1, locked_until: 2 }).unwrap();
        j.forget("dave").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let before_size = fs::metadata(&path).unwrap().len();
        let before = j.snapshot().0;

        j.compact().unwrap();
        assert!(fs::metadata(&path).unwrap().len() < before_size / 100);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640, "mode kept");
        assert_eq!(j.snapshot().0, before);
        let again = open(&path);
        assert_eq!(again.snapshot().0, before);
        assert_eq!(again.token("alice", "T1"), totp(199));
        assert_eq!(again.token("bob", "H1").next_counter, 199);
        assert_eq!(again.lock("carol").failures, 199);
        assert_eq!(again.lock("dave"), LockState::default());
        // No temporary file left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_compaction_in_steps_keeps_what_was_written_meanwhile_and_yields_to_another() {
        let dir = new_dir();
        let path = dir.journal_path();
        let (mut module, mut other) = (open(&path), open(&path));
        for step in 0..50 {
            module.set_totp_step("alice", "T1", step).unwrap();
        }
        let written = module.begin_compaction().unwrap().write(&path).unwrap();
        // Written while the copy was made, by another process and by ourselves.
        other.set_totp_step("alice", "T1", 50).unwrap();
        other.set_lock("bob", LockState { failures: 2, locked_until: 0 }).unwrap();
        module.set_hotp_counter("carol", "H1", 3).unwrap();
        module.finish_compaction(written).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        let again = open(&path);
        assert_eq!(again.token("alice", "T1"), totp(50));
        assert_eq!(again.lock("bob").failures, 2);
        assert_eq!(again.token("carol", "H1").next_counter, 3);
        // Both go on in the new file.
        other.set_totp_step("alice", "T1", 51).unwrap();
        module.refresh().unwrap();
        assert_eq!(module.token("alice", "T1"), totp(51));

        // Someone else compacts first: theirs stands, our copy is dropped.
        let written = module.begin_compaction().unwrap().write(&path).unwrap();
        other.compact().unwrap();
        let theirs = fs::metadata(&path).unwrap().ino();
        module.set_totp_step("alice", "T1", 52).unwrap();
        module.finish_compaction(written).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().ino(), theirs);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no copy left behind");
        assert_eq!(open(&path).token("alice", "T1"), totp(52));
    }

    #[test]
    fn compacts_automatically() {
        let dir = new_dir();
        let path = dir.journal_path();
        let opts = JournalOptions { fsync: false, compact_after: 10 };
        let mut j = StateJournal::open(&path, opts).unwrap();
        let mut other = StateJournal::open(&path, opts).unwrap();
        for step in 0..25 {
            j.set_totp_step("alice", "T1", step).unwrap();
        }
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 10, "{lines}");
        assert!(j.take_compaction_error().is_none());
        other.refresh().unwrap();
        assert_eq!(other.token("alice", "T1"), totp(24));
    }
}

//! Taking the journal's file lock, on the file that is at the path now: a
//! compaction may have replaced it, or someone deleted it.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use super::error::{io_error, JournalError};
use super::StateJournal;

/// The exclusive `flock` every writer of the journal takes (the module and mfa-admin).
/// Through rustix rather than std's `File::lock`, which needs Rust 1.89: the workspace
/// builds with Debian 13's Rust 1.85 (the Dockerfile). Both are `flock(2)`.
///
/// Never waits in `flock` itself: a module may hold the lock on lease (see
/// `lease.rs`) and lets go when someone opens the file at `path`. So a writer
/// that finds the lock held opens the file (the knock), waits a little and tries
/// again, knocking each time, until it gets the lock.
pub(super) fn lock_file(file: &fs::File, path: &Path) -> io::Result<()> {
    let mut pause = Duration::from_micros(20);
    loop {
        if try_lock_file(file)? {
            return Ok(());
        }
        drop(fs::File::open(path));
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Takes the lock if nobody holds it, without knocking: whether it was taken.
pub(super) fn try_lock_file(file: &fs::File) -> io::Result<bool> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) | Err(Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Releases [`lock_file`]'s lock; unlocking an unlocked file is harmless.
pub(super) fn unlock_file(file: &fs::File) -> io::Result<()> {
    flock(file, FlockOperation::Unlock).map_err(io::Error::from)
}

impl StateJournal {
    /// Takes the lock on the file that is at `path` right now: a compaction by
    /// someone else may have replaced it while we waited for the old one.
    /// On lease nobody else can have written: nothing to look at.
    pub(super) fn lock_current(&mut self) -> Result<(), JournalError> {
        if self.leased {
            self.locked_size = Some(self.offset);
            return Ok(());
        }
        loop {
            lock_file(&self.file, &self.path).map_err(io_error("lock", &self.path))?;
            // A file that still has a name is the one at `path` (a compaction renames a
            // new file over it, leaving ours with none): one fstat, no look at the path.
            let meta = self.file.metadata().map_err(io_error("inspect", &self.path))?;
            if meta.nlink() > 0 {
                self.locked_size = Some(meta.len());
                return Ok(());
            }
            match fs::metadata(&self.path) {
                Ok(meta) if (meta.dev(), meta.ino()) == self.file_id => return Ok(()),
                Ok(_) => {
                    self.release();
                    self.reopen()?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Someone deleted the journal: write what we know back, so
                    // that used codes stay used. Then lock the new file.
                    let rewritten = self.read_new(true).and_then(|()| self.compact_locked());
                    self.release();
                    rewritten?;
                }
                Err(e) => {
                    self.release();
                    return Err(io_error("inspect", &self.path)(e));
                }
            }
        }
    }

    /// Lets go of the file lock taken by `lock_current`, unless it is held on lease.
    pub(super) fn release(&self) {
        if !self.leased {
            let _ = unlock_file(&self.file);
        }
    }

    /// Takes the file lock on lease if nobody holds it and the file is the one at
    /// the path, catching up once: from then on no other writer can append until
    /// `end_lease`, so claims need neither the lock nor a look at the file.
    pub(super) fn try_lease(&mut self) -> Result<bool, JournalError> {
        if self.leased {
            return Ok(true);
        }
        if !try_lock_file(&self.file).map_err(io_error("lock", &self.path))? {
            return Ok(false);
        }
        let file_id = self.file_id;
        let caught_up = self.file.metadata().map_err(io_error("inspect", &self.path)).and_then(|meta| {
            if meta.nlink() == 0 {
                // Replaced or deleted: the next write follows the path, unleased.
                return Ok(false);
            }
            self.locked_size = Some(meta.len());
            self.read_new(true).map(|()| self.file_id == file_id)
        });
        if matches!(caught_up, Ok(true)) {
            self.leased = true;
            return Ok(true);
        }
        let _ = unlock_file(&self.file);
        caught_up
    }

    /// Lets go of the lease: writes take the file lock each time again.
    pub(super) fn end_lease(&mut self) {
        if self.leased {
            self.leased = false;
            let _ = unlock_file(&self.file);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::fixtures::{new_dir, open, totp};

    #[test]
    fn a_deleted_journal_is_rewritten_from_memory() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut j = open(&path);
        j.set_totp_step("alice", "T1", 50).unwrap();
        fs::remove_file(&path).unwrap();
        j.refresh().unwrap();
        assert_eq!(j.token("alice", "T1"), totp(50));
        j.set_hotp_counter("alice", "H1", 4).unwrap();
        let again = open(&path);
        assert_eq!(again.token("alice", "T1"), totp(50));
        assert_eq!(again.token("alice", "H1").next_counter, 4);
    }
}

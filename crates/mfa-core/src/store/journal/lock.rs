//! Taking the journal's file lock, on the file that is at the path now: a
//! compaction may have replaced it, or someone deleted it.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

use rustix::fs::{flock, FlockOperation};

use super::error::{io_error, JournalError};
use super::StateJournal;

/// The exclusive `flock` every writer of the journal takes (the module and mfa-admin).
/// Through rustix rather than std's `File::lock`, which needs Rust 1.89: the workspace
/// builds with Debian 13's Rust 1.85 (the Dockerfile). Both are `flock(2)`.
pub(super) fn lock_file(file: &fs::File) -> io::Result<()> {
    flock(file, FlockOperation::LockExclusive).map_err(io::Error::from)
}

/// Releases [`lock_file`]'s lock; unlocking an unlocked file is harmless.
pub(super) fn unlock_file(file: &fs::File) -> io::Result<()> {
    flock(file, FlockOperation::Unlock).map_err(io::Error::from)
}

impl StateJournal {
    /// Takes the lock on the file that is at `path` right now: a compaction by
    /// someone else may have replaced it while we waited for the old one.
    pub(super) fn lock_current(&mut self) -> Result<(), JournalError> {
        loop {
            lock_file(&self.file).map_err(io_error("lock", &self.path))?;
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
                    let _ = unlock_file(&self.file);
                    self.reopen()?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Someone deleted the journal: write what we know back, so
                    // that used codes stay used. Then lock the new file.
                    let rewritten = self.read_new(true).and_then(|()| self.compact_locked());
                    let _ = unlock_file(&self.file);
                    rewritten?;
                }
                Err(e) => {
                    let _ = unlock_file(&self.file);
                    return Err(io_error("inspect", &self.path)(e));
                }
            }
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

//! The lock that editors of the token file (mfa-admin) hold from reading it to
//! putting the new file in place, so that two edits at once cannot lose one.
//!
//! The token file is replaced by a rename (store::atomic), which leaves a lock
//! on the old file behind with the old file: the lock is an exclusive `flock`
//! on a file of its own beside it, `<token file>.lock`, which is never
//! replaced. The module only reads the token file and takes no lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::error::io_error;
use super::TokenError;

/// Held until dropped (closing the file releases the flock).
#[derive(Debug)]
pub struct EditLock {
    _file: File,
}

impl EditLock {
    /// The lock's file for the token file `tokens`.
    pub fn path_for(tokens: &Path) -> PathBuf {
        let mut name = tokens.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Waits until no other editor of `tokens` holds the lock, then holds it.
    /// The lock file is created (mode 0600) when missing; its directory must exist.
    pub fn acquire(tokens: &Path) -> Result<EditLock, TokenError> {
        let path = Self::path_for(tokens);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error("open the token file's lock", &path, e))?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| io_error("lock the token file's lock", &path, e.into()))?;
        Ok(EditLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn one_editor_at_a_time() {
        let dir = TempDir::new("edit-lock");
        let tokens = dir.0.join("tokens.json");
        assert_eq!(EditLock::path_for(&tokens), dir.0.join("tokens.json.lock"));
        let first = EditLock::acquire(&tokens).unwrap();
        let second_holds = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&second_holds);
        let waiter = std::thread::spawn(move || {
            let _second = EditLock::acquire(&tokens).unwrap();
            flag.store(true, Ordering::SeqCst);
        });
        // The second cannot hold it while the first does (flock locks per open file).
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!second_holds.load(Ordering::SeqCst));
        drop(first);
        waiter.join().unwrap();
        assert!(second_holds.load(Ordering::SeqCst));
    }
}

//! Opening the journal file, creating it (and its directory) private when missing.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::{io_error, JournalError};
use crate::store::atomic::parent_dir;

/// The journal is module-owned; nobody else needs to read it.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Opens the journal for reading and appending, creating it (and its directory)
/// when missing. Returns the file and its (device, inode).
pub(super) fn open_file(path: &Path) -> Result<(File, (u64, u64)), JournalError> {
    let dir = parent_dir(path);
    if !dir.exists() {
        create_dirs(dir).map_err(io_error("create the directory of", path))?;
    }
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    let file = match options.clone().create_new(true).mode(FILE_MODE).open(path) {
        Ok(file) => {
            adopt_directory_owner(&file, dir);
            // The umask may have narrowed the mode; 0600 is what we mean.
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE)).map_err(io_error("set the mode of", path))?;
            file
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options.open(path).map_err(io_error("open", path))?,
        Err(e) => return Err(io_error("create", path)(e)),
    };
    let meta = file.metadata().map_err(io_error("inspect", path))?;
    // Checked on every open (start, and a reopen after someone else's compaction).
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(JournalError::Permissions { path: path.to_path_buf(), mode });
    }
    Ok((file, (meta.dev(), meta.ino())))
}

/// Creates `dir` and its missing parents, private, each given the owner of the
/// directory it is made in, as the journal is given its directory's: mfa-admin run
/// as root where the server's user owns the parent (Debian: /var/lib/freeradius)
/// must not leave a directory the server cannot write to. Best effort, as below.
fn create_dirs(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.exists() {
        missing.push(at);
        at = at.parent().unwrap_or(Path::new(""));
    }
    for new in missing.into_iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(new) {
            Ok(()) => {}
            // Someone else made it meanwhile: theirs stays as it is.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        if let (Ok(parent), Ok(meta)) = (fs::metadata(parent_dir(new)), fs::metadata(new)) {
            if (parent.uid(), parent.gid()) != (meta.uid(), meta.gid()) {
                let _ = std::os::unix::fs::chown(new, Some(parent.uid()), Some(parent.gid()));
            }
        }
    }
    Ok(())
}

/// A journal created by root (mfa-admin) in the module's directory is given the
/// directory's owner, so that the module can still append to it. Best effort:
/// without the privilege to do so, we are already the right user.
fn adopt_directory_owner(file: &File, dir: &Path) {
    if let (Ok(dir_meta), Ok(meta)) = (fs::metadata(dir), file.metadata()) {
        if (dir_meta.uid(), dir_meta.gid()) != (meta.uid(), meta.gid()) {
            let _ = std::os::unix::fs::fchown(file, Some(dir_meta.uid()), Some(dir_meta.gid()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    use super::super::fixtures::{new_dir, open};
    use super::super::{LockState, TokenState};

    #[test]
    fn creates_a_private_file_and_its_directory() {
        let dir = new_dir();
        let path = dir.journal_path();
        let j = open(&path);
        assert_eq!(j.token("alice", "T1"), TokenState::default());
        assert_eq!(j.lock("alice"), LockState::default());
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_journal_others_can_write_is_refused_naming_file_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = new_dir();
        let path = dir.journal_path();
        drop(open(&path));
        for mode in [0o620, 0o602, 0o666] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = super::super::StateJournal::open(&path, Default::default()).unwrap_err().to_string();
            assert!(e.contains(&path.display().to_string()) && e.contains(&format!("{mode:04o}")), "{e}");
            assert!(e.contains("chmod 600"), "{e}");
        }
        for mode in [0o600, 0o640, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert!(super::super::StateJournal::open(&path, Default::default()).is_ok(), "{mode:o}");
        }
    }

    #[test]
    fn directories_it_creates_take_the_owner_of_their_parent() {
        let dir = new_dir();
        let top = dir.journal_path().parent().unwrap().to_path_buf();
        let path = top.join("a/b/state.jsonl");
        fs::create_dir_all(&top).unwrap();
        // Root (CI) can hand the parent to another user, as Debian's /var/lib/freeradius
        // belongs to freerad; anyone else checks the same rule with their own owner.
        let owner = if std::os::unix::fs::chown(&top, Some(65534), Some(65534)).is_ok() {
            (65534, 65534)
        } else {
            let meta = fs::metadata(&top).unwrap();
            (meta.uid(), meta.gid())
        };
        let _ = open(&path);
        for made in [top.join("a"), top.join("a/b"), path.clone()] {
            let meta = fs::metadata(&made).unwrap();
            assert_eq!((meta.uid(), meta.gid()), owner, "{}", made.display());
        }
        assert_eq!(fs::metadata(top.join("a/b")).unwrap().mode() & 0o777, 0o700);
    }
}

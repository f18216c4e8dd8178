//! Writing a file so that a reader sees the old version or the new one, never
//! half of one, and a crash right after loses neither: the new version goes to a
//! temporary file in the same directory (the same file system, so that putting it
//! in place is one atomic step), is synced, takes the file's name, and then the
//! directory is synced so that the new name is on disk too.
//!
//! The token file, the compacted state journal and the State key file are all
//! written this way. Errors name the step and the file, never what was written.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use data_encoding::HEXLOWER;

/// Who owns the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Whoever creates it.
    Creator,
    /// The creator, in the directory's group where the creator may (as in a setgid
    /// directory): best effort.
    DirectoryGroup,
    /// Exactly this user and group, those of the file being replaced; failing to
    /// set them is an error, since the file's readers might lose access.
    Exactly { uid: u32, gid: u32 },
}

/// The step of a write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Name,
    Create,
    Inspect,
    Own,
    Mode,
    Write,
    Sync,
    Rename,
    Link,
    SyncDirectory,
}

impl Step {
    /// What was being done, as a verb phrase for "cannot ... PATH".
    pub fn action(self) -> &'static str {
        match self {
            Step::Name => "name a temporary file beside",
            Step::Create => "create the temporary file",
            Step::Inspect => "inspect the temporary file",
            Step::Own => "keep the owner and group of",
            Step::Mode => "set the mode of the temporary file",
            Step::Write => "write the temporary file",
            Step::Sync => "sync the temporary file",
            Step::Rename => "replace",
            Step::Link => "create by a hard link",
            Step::SyncDirectory => "sync the directory",
        }
    }
}

/// Why a file could not be written: the step, the file it acted on (the
/// temporary file, the file itself or its directory) and the system's error.
#[derive(Debug)]
pub struct AtomicError {
    pub step: Step,
    pub path: PathBuf,
    pub source: io::Error,
}

impl AtomicError {
    fn new(step: Step, path: &Path) -> impl FnOnce(io::Error) -> AtomicError + '_ {
        move |source| AtomicError { step, path: path.to_path_buf(), source }
    }

    /// Whether [`create`] (or [`NewFile::link_as_target`]) found the file already there.
    pub fn target_exists(&self) -> bool {
        self.step == Step::Link && self.source.kind() == io::ErrorKind::AlreadyExists
    }
}

impl fmt::Display for AtomicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} {}: {}", self.step.action(), self.path.display(), self.source)
    }
}

impl std::error::Error for AtomicError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Replaces `target` (or creates it) with `bytes`, mode `mode` and owner `owner`.
pub fn replace(target: &Path, bytes: &[u8], mode: u32, owner: Owner) -> Result<(), AtomicError> {
    let mut new = NewFile::create(target, mode, owner)?;
    new.write_all(bytes)?;
    new.rename_over()?;
    sync_directory(target)
}

/// Creates `target` with `bytes` and mode `mode`, unless it exists
/// ([`AtomicError::target_exists`]): of several creators racing, exactly one wins.
pub fn create(target: &Path, bytes: &[u8], mode: u32) -> Result<(), AtomicError> {
    let mut new = NewFile::create(target, mode, Owner::Creator)?;
    new.write_all(bytes)?;
    new.link_as_target()?;
    sync_directory(target)
}

/// Makes a new name in `target`'s directory durable.
pub fn sync_directory(target: &Path) -> Result<(), AtomicError> {
    let dir = parent_dir(target);
    File::open(dir).and_then(|d| d.sync_all()).map_err(AtomicError::new(Step::SyncDirectory, dir))
}

/// The directory of `path`; "." for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The next version of `target`, being written beside it. Dropped before it
/// takes the name, it removes itself.
pub struct NewFile {
    target: PathBuf,
    file: File,
    /// (device, inode): what the path has once the file is in place.
    id: (u64, u64),
    temp: TempName,
}

impl NewFile {
    /// Creates the temporary file with its final owner and mode, empty. It is
    /// open for reading and appending, so that a log (the journal) can go on
    /// using the descriptor once the file is in place.
    pub fn create(target: &Path, mode: u32, owner: Owner) -> Result<NewFile, AtomicError> {
        let temp = temp_name(target)?;
        // Private until owner and mode are set: nobody else can open it meanwhile.
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(AtomicError::new(Step::Create, &temp))?;
        let temp = TempName(temp);
        let created = file.metadata().map_err(AtomicError::new(Step::Inspect, &temp.0))?;
        match owner {
            Owner::Creator => {}
            Owner::DirectoryGroup => {
                if let Ok(dir) = fs::metadata(parent_dir(target)) {
                    if dir.gid() != created.gid() {
                        let _ = std::os::unix::fs::fchown(&file, None, Some(dir.gid()));
                    }
                }
            }
            Owner::Exactly { uid, gid } => {
                if (uid, gid) != (created.uid(), created.gid()) {
                    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                        .map_err(AtomicError::new(Step::Own, target))?;
                }
            }
        }
        // After the chown, which can clear set-id bits; and past the umask.
        file.set_permissions(fs::Permissions::from_mode(mode)).map_err(AtomicError::new(Step::Mode, &temp.0))?;
        Ok(NewFile { target: target.to_path_buf(), file, id: (created.dev(), created.ino()), temp })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), AtomicError> {
        self.file.write_all(bytes).map_err(AtomicError::new(Step::Write, &self.temp.0))
    }

    /// Syncs what was written so far, so that the sync in [`NewFile::rename_over`]
    /// has little left to do (the journal's compaction writes the bulk unlocked).
    pub fn sync(&self) -> Result<(), AtomicError> {
        self.file.sync_data().map_err(AtomicError::new(Step::Sync, &self.temp.0))
    }

    /// (device, inode) of the new file.
    pub fn id(&self) -> (u64, u64) {
        self.id
    }

    /// Syncs the file and renames it over the target; returns it, open. The
    /// directory is synced by [`sync_directory`], after whatever the caller must
    /// do once the path is the new file.
    pub fn rename_over(self) -> Result<File, AtomicError> {
        let NewFile { target, file, temp, .. } = self;
        file.sync_all().map_err(AtomicError::new(Step::Sync, &temp.0))?;
        fs::rename(&temp.0, &target).map_err(AtomicError::new(Step::Rename, &target))?;
        temp.forget();
        Ok(file)
    }

    /// Syncs the file and links it as the target, which must not exist: link(2)
    /// never replaces a name. The temporary name is removed either way.
    pub fn link_as_target(self) -> Result<File, AtomicError> {
        let NewFile { target, file, temp, .. } = self;
        file.sync_all().map_err(AtomicError::new(Step::Sync, &temp.0))?;
        fs::hard_link(&temp.0, &target).map_err(AtomicError::new(Step::Link, &target))?;
        Ok(file)
    }
}

/// A temporary file's name, removed on drop unless forgotten.
struct TempName(PathBuf);

impl TempName {
    /// The file is in place under its final name: nothing to remove. (The name
    /// is dropped, not leaked: std::mem::forget would leak it at every save.)
    fn forget(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for TempName {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.0);
        }
    }
}

/// `target` with a suffix unique to this process, call and (with random bytes)
/// host, so that concurrent writers, even with one pid in two containers sharing
/// the directory, never share a temporary file.
fn temp_name(target: &Path) -> Result<PathBuf, AtomicError> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut random = [0u8; 8];
    getrandom::getrandom(&mut random)
        .map_err(|e| AtomicError::new(Step::Name, target)(io::Error::other(e.to_string())))?;
    let mut name = target.as_os_str().to_owned();
    name.push(format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed),
        HEXLOWER.encode(&random)
    ));
    Ok(PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::testutil::TempDir;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn entries(dir: &TempDir) -> usize {
        fs::read_dir(dir.path()).unwrap().count()
    }

    #[test]
    fn replace_creates_or_replaces_with_the_exact_mode() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("file");
        // 0660 is more than the usual umask (022) lets through.
        replace(&path, b"one", 0o660, Owner::DirectoryGroup).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode_of(&path), 0o660);
        let first = fs::metadata(&path).unwrap().ino();

        replace(&path, b"two", 0o600, Owner::Creator).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o600);
        assert_ne!(fs::metadata(&path).unwrap().ino(), first, "a new file took the name");
        assert_eq!(entries(&dir), 1, "no temporary file is left behind");
    }

    #[test]
    fn replace_keeps_the_owner_it_is_given() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("file");
        let me = fs::metadata(dir.path()).unwrap();
        replace(&path, b"x", 0o640, Owner::Exactly { uid: me.uid(), gid: me.gid() }).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (me.uid(), me.gid()));

        // Another owner: root may give it, anyone else is refused, naming the file.
        let other = Owner::Exactly { uid: 65534, gid: 65534 };
        match replace(&path, b"y", 0o2640, other) {
            Ok(()) => {
                let meta = fs::metadata(&path).unwrap();
                assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
                assert_eq!(meta.mode() & 0o7777, 0o2640, "the set-id bit survives the chown");
            }
            Err(e) => {
                assert_eq!(e.step, Step::Own);
                assert!(e.to_string().contains(&path.display().to_string()), "{e}");
                assert_eq!(fs::read(&path).unwrap(), b"x", "the old file stays");
            }
        }
        assert_eq!(entries(&dir), 1);
    }

    #[test]
    fn create_never_replaces_and_one_of_many_wins() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("key");
        create(&path, b"first", 0o600).unwrap();
        let err = create(&path, b"second", 0o600).unwrap_err();
        assert!(err.target_exists(), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(entries(&dir), 1);

        let racing = dir.path().join("raced");
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8u8)
            .map(|i| {
                let (racing, barrier) = (racing.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    create(&racing, &[i], 0o600).is_ok()
                })
            })
            .collect();
        let winners = handles.into_iter().map(|h| h.join().unwrap()).filter(|won| *won).count();
        assert_eq!(winners, 1);
        assert_eq!(entries(&dir), 2);
    }

    #[test]
    fn the_new_file_stays_open_at_the_path() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("log");
        fs::write(&path, "old\n").unwrap();
        let mut new = NewFile::create(&path, 0o600, Owner::Creator).unwrap();
        new.write_all(b"a\n").unwrap();
        let id = new.id();
        let mut file = new.rename_over().unwrap();
        sync_directory(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.dev(), meta.ino()), id);
        // Opened for appending: later writes land after what is there.
        file.write_all(b"b\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\nb\n");
    }

    #[test]
    fn an_abandoned_new_file_removes_itself() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("file");
        let mut new = NewFile::create(&path, 0o600, Owner::Creator).unwrap();
        new.write_all(b"half").unwrap();
        assert_eq!(entries(&dir), 1);
        drop(new);
        assert_eq!(entries(&dir), 0);
    }

    #[test]
    fn errors_name_the_step_and_file_never_the_bytes() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("no-such-dir").join("file");
        let err = replace(&path, b"secret-bytes", 0o600, Owner::Creator).unwrap_err();
        assert_eq!(err.step, Step::Create);
        let text = err.to_string();
        assert!(text.starts_with("cannot create the temporary file "), "{text}");
        assert!(text.contains("no-such-dir"), "{text}");
        assert!(!text.contains("secret-bytes"), "{text}");

        // A directory in the way: renaming a file over it fails.
        let taken = dir.path().join("taken");
        fs::create_dir(&taken).unwrap();
        fs::write(taken.join("inside"), "").unwrap();
        let err = replace(&taken, b"secret-bytes", 0o600, Owner::Creator).unwrap_err();
        assert_eq!(err.step, Step::Rename);
        assert!(err.to_string().starts_with(&format!("cannot replace {}: ", taken.display())), "{err}");
        assert_eq!(entries(&dir), 1, "the temporary file is gone");
    }
}

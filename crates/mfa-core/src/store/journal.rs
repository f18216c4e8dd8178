//! The durable state journal: last accepted TOTP step and next HOTP counter per
//! (user, serial), failure counts and lockouts per user (format in docs/DESIGN.md).
//!
//! The FreeRADIUS module and `mfa-admin` share one file. Every writer takes an
//! exclusive `flock` on the file, catches up with what others appended, then
//! appends one JSON line with a single `write()`. Records are idempotent "set"
//! records, so replaying a file always yields the same state. A state we cannot
//! read is an error, never "empty": forgetting a step would let a code be used twice.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::atomic::{self, parent_dir, AtomicError, NewFile, Owner, Step};

/// The journal is module-owned; nobody else needs to read it.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

pub use crate::factor::state::TokenState;

/// Failed attempts and lockout of one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockState {
    pub failures: u32,
    /// Unix time until which the user is locked; 0 (or any past time) means not locked.
    pub locked_until: u64,
}

impl LockState {
    pub fn is_locked(&self, now: u64) -> bool {
        self.locked_until > now
    }
}

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

#[derive(Debug)]
pub enum JournalError {
    /// A file operation failed; `action` is a verb phrase such as "append to".
    Io { path: PathBuf, action: &'static str, source: io::Error },
    /// A complete line that is not a valid record.
    Corrupt { path: PathBuf, line: u64, reason: String },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io { path, action, source } => {
                write!(f, "cannot {action} state journal {}: {source}", path.display())
            }
            JournalError::Corrupt { path, line, reason } => write!(
                f,
                "state journal {} line {line} is not a valid record ({reason}); refusing to \
                 guess the state, since a lost step or counter would let a code be used twice",
                path.display()
            ),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } => Some(source),
            JournalError::Corrupt { .. } => None,
        }
    }
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io { path: path.to_path_buf(), action, source }
}

/// One line of the journal, as written.
#[derive(Serialize)]
#[serde(tag = "k", rename_all = "lowercase")]
enum Record<'a> {
    Totp { u: &'a str, s: &'a str, v: u64 },
    Hotp { u: &'a str, s: &'a str, v: u64 },
    Lock { u: &'a str, f: u32, until: u64 },
    Unlock { u: &'a str },
    Forget { u: &'a str },
}

/// One line of the journal, as read: flat, so parsing needs no buffering of
/// the tagged enum; unknown extra fields are ignored so that a newer writer's
/// additions do not stop an older reader.
#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow)]
    k: Cow<'a, str>,
    #[serde(borrow)]
    u: Cow<'a, str>,
    #[serde(borrow, default)]
    s: Option<Cow<'a, str>>,
    #[serde(default)]
    v: Option<u64>,
    #[serde(default)]
    f: Option<u32>,
    #[serde(default)]
    until: Option<u64>,
}

impl<'a> RawRecord<'a> {
    fn record(&'a self) -> Result<Record<'a>, String> {
        let u = &*self.u;
        let s = || self.s.as_deref().ok_or("field \"s\" is missing");
        let v = || self.v.ok_or("field \"v\" is missing");
        Ok(match &*self.k {
            "totp" => Record::Totp { u, s: s()?, v: v()? },
            "hotp" => Record::Hotp { u, s: s()?, v: v()? },
            "lock" => Record::Lock {
                u,
                f: self.f.ok_or("field \"f\" is missing")?,
                until: self.until.ok_or("field \"until\" is missing")?,
            },
            "unlock" => Record::Unlock { u },
            "forget" => Record::Forget { u },
            other => return Err(format!("unknown record kind {other:?}")),
        })
    }
}

#[derive(Debug, Default)]
struct UserState {
    tokens: HashMap<String, TokenState>,
    lock: LockState,
}

/// The journal file and the state it describes. Not shared between threads by
/// itself: the module keeps it behind a Mutex.
#[derive(Debug)]
pub struct StateJournal {
    path: PathBuf,
    opts: JournalOptions,
    file: File,
    /// (device, inode) of `file`, to notice that a compaction replaced the path.
    file_id: (u64, u64),
    /// Bytes of `file` applied so far; always just after a newline (or 0).
    offset: u64,
    /// Lines of `file` applied so far, for error messages.
    lines: u64,
    /// Records applied since the last compaction: roughly the garbage in the file.
    since_compaction: usize,
    users: HashMap<String, UserState>,
    compaction_error: Option<JournalError>,
    /// The size `lock_current` just saw, for the `read_new` that follows it.
    locked_size: Option<u64>,
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
            users: HashMap::new(),
            compaction_error: None,
            locked_size: None,
        };
        journal.lock_current()?;
        // Under the lock no writer is mid-line, so a partial last line is a
        // dead writer's and can be cut off.
        let loaded = journal.read_new(true);
        let _ = journal.file.unlock();
        loaded?;
        journal.since_compaction = journal.garbage_estimate();
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies records other processes appended since our last read. Costs one
    /// fstat and one stat when nothing changed.
    pub fn refresh(&mut self) -> Result<(), JournalError> {
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
        if size > self.offset {
            self.read_new(false)
        } else if size < self.offset {
            // Shrunk under us by something other than a compaction: start over.
            self.reopen()
        } else {
            Ok(())
        }
    }

    pub fn token(&self, user: &str, serial: &str) -> TokenState {
        self.users.get(user).and_then(|u| u.tokens.get(serial)).copied().unwrap_or_default()
    }

    pub fn lock(&self, user: &str) -> LockState {
        self.users.get(user).map(|u| u.lock).unwrap_or_default()
    }

    /// Records an accepted TOTP step (the stored step never goes down).
    pub fn set_totp_step(&mut self, user: &str, serial: &str, step: u64) -> Result<(), JournalError> {
        self.append(&Record::Totp { u: user, s: serial, v: step })
    }

    /// Records the next acceptable HOTP counter (it never goes down).
    pub fn set_hotp_counter(&mut self, user: &str, serial: &str, next_counter: u64) -> Result<(), JournalError> {
        self.append(&Record::Hotp { u: user, s: serial, v: next_counter })
    }

    /// Like `set_totp_step`, but only if `step` is later than the last accepted
    /// step as seen under the file lock; returns whether it was. This closes the
    /// window in which two processes could both accept the same code.
    pub fn claim_totp_step(&mut self, user: &str, serial: &str, step: u64) -> Result<bool, JournalError> {
        self.append_if(&Record::Totp { u: user, s: serial, v: step }, |j| {
            j.token(user, serial).last_step.is_none_or(|last| step > last)
        })
    }

    /// Like `set_hotp_counter`, but only if it moves the counter forward.
    pub fn claim_hotp_counter(&mut self, user: &str, serial: &str, next_counter: u64) -> Result<bool, JournalError> {
        let record = Record::Hotp { u: user, s: serial, v: next_counter };
        self.append_if(&record, |j| next_counter > j.token(user, serial).next_counter)
    }

    pub fn set_lock(&mut self, user: &str, lock: LockState) -> Result<(), JournalError> {
        self.append(&Record::Lock { u: user, f: lock.failures, until: lock.locked_until })
    }

    /// Clears failures and lockout.
    /// Read-modify-write of a user's failures and lock, under the file lock and
    /// after catching up with every other writer, so that two processes (or two
    /// module instances) counting failures of one user neither lose a count nor
    /// undo each other's lock. Returns the state written.
    pub fn update_lock(
        &mut self,
        user: &str,
        change: impl FnOnce(LockState) -> LockState,
    ) -> Result<LockState, JournalError> {
        self.lock_current()?;
        let result = self.update_lock_locked(user, change);
        if result.is_ok() {
            self.compact_if_due();
        }
        let _ = self.file.unlock();
        result
    }

    fn update_lock_locked(
        &mut self,
        user: &str,
        change: impl FnOnce(LockState) -> LockState,
    ) -> Result<LockState, JournalError> {
        self.read_new(true)?;
        let next = change(self.lock(user));
        let record = Record::Lock { u: user, f: next.failures, until: next.locked_until };
        let mut line = serde_json::to_vec(&record).expect("records always serialize");
        line.push(b'\n');
        self.append_locked(&line, &record, |_| true)?;
        Ok(next)
    }

    pub fn unlock(&mut self, user: &str) -> Result<(), JournalError> {
        self.append(&Record::Unlock { u: user })
    }

    /// Drops all state of a user (after the user was removed from the token file).
    pub fn forget(&mut self, user: &str) -> Result<(), JournalError> {
        self.append(&Record::Forget { u: user })
    }

    /// Rewrites the journal as the minimal records for the current state.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        self.lock_current()?;
        let result = self.read_new(true).and_then(|()| self.compact_locked());
        let _ = self.file.unlock();
        result
    }

    /// The error of the last failed automatic compaction, if any. Such a failure
    /// does not fail the mutation that triggered it (that record is safely
    /// appended); the caller may log it.
    pub fn take_compaction_error(&mut self) -> Option<JournalError> {
        self.compaction_error.take()
    }

    /// Users that have any state, sorted (for listings).
    pub fn users(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    // -- internals ----------------------------------------------------------

    fn append(&mut self, record: &Record<'_>) -> Result<(), JournalError> {
        self.append_if(record, |_| true).map(|_| ())
    }

    /// Under the file lock: catch up, and if `wanted` still holds, append.
    fn append_if(&mut self, record: &Record<'_>, wanted: impl FnOnce(&Self) -> bool) -> Result<bool, JournalError> {
        let mut line = serde_json::to_vec(record).expect("records always serialize");
        line.push(b'\n');
        self.lock_current()?;
        let result = self.append_locked(&line, record, wanted);
        if matches!(result, Ok(true)) {
            self.compact_if_due();
        }
        // After a compaction `file` is the new, unlocked file; the old one's lock
        // went with its descriptor. Unlocking an unlocked file is harmless.
        let _ = self.file.unlock();
        result
    }

    fn append_locked(
        &mut self,
        line: &[u8],
        record: &Record<'_>,
        wanted: impl FnOnce(&Self) -> bool,
    ) -> Result<bool, JournalError> {
        self.read_new(true)?;
        if !wanted(self) {
            return Ok(false);
        }
        // One write() on an O_APPEND descriptor: other readers see the whole
        // line or (briefly) a prefix of it without a newline, which they skip.
        let written = (&self.file).write(line).map_err(io_error("append to", &self.path))?;
        if written != line.len() {
            // A half line would make the journal unreadable for everyone.
            let _ = self.file.set_len(self.offset);
            return Err(io_error("append to", &self.path)(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write (disk full?)",
            )));
        }
        self.offset += line.len() as u64;
        self.lines += 1;
        self.since_compaction += 1;
        self.apply(record);
        if self.opts.fsync {
            self.file.sync_data().map_err(io_error("sync", &self.path))?;
        }
        Ok(true)
    }

    /// Under the file lock, after a write: compacts when enough records piled up. A
    /// failure is kept for `take_compaction_error` and not retried on every write.
    fn compact_if_due(&mut self) {
        if self.compaction_due() {
            if let Err(e) = self.compact_locked() {
                self.since_compaction = 0;
                self.compaction_error = Some(e);
            }
        }
    }

    fn compaction_due(&self) -> bool {
        self.opts.compact_after > 0 && self.since_compaction >= self.opts.compact_after
    }

    /// Takes the lock on the file that is at `path` right now: a compaction by
    /// someone else may have replaced it while we waited for the old one.
    fn lock_current(&mut self) -> Result<(), JournalError> {
        loop {
            self.file.lock().map_err(io_error("lock", &self.path))?;
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
                    let _ = self.file.unlock();
                    self.reopen()?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Someone deleted the journal: write what we know back, so
                    // that used codes stay used. Then lock the new file.
                    let rewritten = self.read_new(true).and_then(|()| self.compact_locked());
                    let _ = self.file.unlock();
                    rewritten?;
                }
                Err(e) => {
                    let _ = self.file.unlock();
                    return Err(io_error("inspect", &self.path)(e));
                }
            }
        }
    }

    /// Switches to the file now at `path` and rebuilds the state from it alone
    /// (a compacted file holds the complete state).
    fn reopen(&mut self) -> Result<(), JournalError> {
        let (file, file_id) = open_file(&self.path)?;
        self.file = file;
        self.file_id = file_id;
        self.offset = 0;
        self.lines = 0;
        self.users.clear();
        self.read_new(false)?;
        self.since_compaction = self.garbage_estimate();
        Ok(())
    }

    /// Reads and applies the complete lines after `offset`. With `locked`, a
    /// partial last line cannot be a write in progress, so it is truncated away.
    fn read_new(&mut self, locked: bool) -> Result<(), JournalError> {
        // One fstat (or none, just after lock_current) instead of a seek and a read when
        // nothing was appended (most writes).
        let size = match self.locked_size.take() {
            Some(size) => size,
            None => self.file.metadata().map_err(io_error("inspect", &self.path))?.len(),
        };
        if size == self.offset {
            return Ok(());
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

    /// Applies each newline-terminated line; returns the bytes consumed.
    fn apply_lines(&mut self, buf: &[u8]) -> Result<usize, JournalError> {
        let mut consumed = 0;
        while let Some(len) = buf[consumed..].iter().position(|&b| b == b'\n') {
            let line = &buf[consumed..consumed + len];
            if !line.iter().all(u8::is_ascii_whitespace) {
                let record = serde_json::from_slice::<RawRecord<'_>>(line)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| raw.record().map(|r| self.apply(&r)));
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

    fn apply(&mut self, record: &Record<'_>) {
        match *record {
            Record::Totp { u, s, v } => {
                let token = self.token_mut(u, s);
                token.last_step = Some(token.last_step.map_or(v, |last| last.max(v)));
            }
            Record::Hotp { u, s, v } => {
                let token = self.token_mut(u, s);
                token.next_counter = token.next_counter.max(v);
            }
            Record::Lock { u, f, until } => {
                self.user_mut(u).lock = LockState { failures: f, locked_until: until };
                self.drop_if_empty(u);
            }
            Record::Unlock { u } => {
                if let Some(state) = self.users.get_mut(u) {
                    state.lock = LockState::default();
                    self.drop_if_empty(u);
                }
            }
            Record::Forget { u } => {
                self.users.remove(u);
            }
        }
    }

    fn user_mut(&mut self, user: &str) -> &mut UserState {
        // Look up first: allocating the key for every record would dominate loading.
        if !self.users.contains_key(user) {
            self.users.insert(user.to_owned(), UserState::default());
        }
        self.users.get_mut(user).expect("just inserted")
    }

    fn token_mut(&mut self, user: &str, serial: &str) -> &mut TokenState {
        let tokens = &mut self.user_mut(user).tokens;
        if !tokens.contains_key(serial) {
            tokens.insert(serial.to_owned(), TokenState::default());
        }
        tokens.get_mut(serial).expect("just inserted")
    }

    fn drop_if_empty(&mut self, user: &str) {
        if let Some(state) = self.users.get(user) {
            if state.tokens.is_empty() && state.lock == LockState::default() {
                self.users.remove(user);
            }
        }
    }

    /// The records that reproduce the current state, sorted for stable output.
    fn snapshot(&self) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let mut count = 0;
        let mut push = |record: Record<'_>| {
            serde_json::to_writer(&mut out, &record).expect("records always serialize");
            out.push(b'\n');
            count += 1;
        };
        let mut users: Vec<(&String, &UserState)> = self.users.iter().collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (user, state) in users {
            let mut tokens: Vec<(&String, &TokenState)> = state.tokens.iter().collect();
            tokens.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (serial, token) in tokens {
                if let Some(step) = token.last_step {
                    push(Record::Totp { u: user, s: serial, v: step });
                }
                if token.next_counter > 0 {
                    push(Record::Hotp { u: user, s: serial, v: token.next_counter });
                }
            }
            if state.lock != LockState::default() {
                push(Record::Lock { u: user, f: state.lock.failures, until: state.lock.locked_until });
            }
        }
        (out, count)
    }

    /// Records in the file beyond those a compaction would keep.
    fn garbage_estimate(&self) -> usize {
        let live: usize = self
            .users
            .values()
            .map(|u| {
                let tokens: usize = u
                    .tokens
                    .values()
                    .map(|t| usize::from(t.last_step.is_some()) + usize::from(t.next_counter > 0))
                    .sum();
                tokens + usize::from(u.lock != LockState::default())
            })
            .sum();
        (self.lines as usize).saturating_sub(live)
    }

    /// Writes the snapshot to a temporary file and renames it over the journal,
    /// keeping the journal's owner (mfa-admin running as root must not leave a
    /// journal that the FreeRADIUS user can no longer open) and mode.
    /// The caller holds the lock on the current file and has caught up.
    fn compact_locked(&mut self) -> Result<(), JournalError> {
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
        self.offset = bytes.len() as u64;
        self.lines = count;
        self.since_compaction = 0;
        atomic::sync_directory(&self.path).map_err(failed)
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

/// Opens the journal for reading and appending, creating it (and its directory)
/// when missing. Returns the file and its (device, inode).
fn open_file(path: &Path) -> Result<(File, (u64, u64)), JournalError> {
    let dir = parent_dir(path);
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(io_error("create the directory of", path))?;
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
    Ok((file, (meta.dev(), meta.ino())))
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
    use super::*;

    use crate::testutil::TempDir;

    fn new_dir() -> TempDir {
        TempDir::new("journal")
    }

    impl TempDir {
        fn journal_path(&self) -> PathBuf {
            self.0.join("state").join("state.jsonl")
        }
    }

    fn open(path: &Path) -> StateJournal {
        StateJournal::open(path, JournalOptions::default()).unwrap()
    }

    fn totp(step: u64) -> TokenState {
        TokenState { last_step: Some(step), next_counter: 0 }
    }

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
    fn steps_and_counters_only_go_up() {
        let dir = new_dir();
        let mut j = open(&dir.journal_path());
        j.set_totp_step("alice", "T1", 100).unwrap();
        j.set_totp_step("alice", "T1", 99).unwrap();
        assert_eq!(j.token("alice", "T1"), totp(100));
        j.set_hotp_counter("alice", "H1", 7).unwrap();
        j.set_hotp_counter("alice", "H1", 3).unwrap();
        assert_eq!(j.token("alice", "H1").next_counter, 7);
        assert_eq!(j.token("alice", "H1").last_step, None);
        assert_eq!(j.token("bob", "T1"), TokenState::default());

        assert!(!j.claim_totp_step("alice", "T1", 100).unwrap());
        assert!(j.claim_totp_step("alice", "T1", 101).unwrap());
        assert!(j.claim_totp_step("alice", "T2", 0).unwrap());
        assert!(!j.claim_hotp_counter("alice", "H1", 7).unwrap());
        assert!(j.claim_hotp_counter("alice", "H1", 8).unwrap());

        let again = open(&dir.journal_path());
        assert_eq!(again.token("alice", "T1"), totp(101));
        assert_eq!(again.token("alice", "T2"), totp(0));
        assert_eq!(again.token("alice", "H1").next_counter, 8);
    }

    #[test]
    fn lock_unlock_and_forget() {
        let dir = new_dir();
        let mut j = open(&dir.journal_path());
        let locked = LockState { failures: 5, locked_until: 1_700_000_000 };
        j.set_lock("alice", locked).unwrap();
        j.set_totp_step("alice", "T1", 5).unwrap();
        j.set_lock("bob", LockState { failures: 2, locked_until: 0 }).unwrap();
        assert_eq!(j.lock("alice"), locked);
        assert!(locked.is_locked(1_699_999_999) && !locked.is_locked(1_700_000_000));

        j.unlock("alice").unwrap();
        assert_eq!(j.lock("alice"), LockState::default());
        assert_eq!(j.token("alice", "T1"), totp(5), "unlock keeps replay state");
        j.unlock("nobody").unwrap();

        j.forget("alice").unwrap();
        assert_eq!(j.token("alice", "T1"), TokenState::default());
        assert_eq!(j.lock("bob").failures, 2);
        assert_eq!(j.users(), ["bob"]);

        let again = open(&dir.journal_path());
        assert_eq!(again.token("alice", "T1"), TokenState::default());
        assert_eq!(again.lock("alice"), LockState::default());
        assert_eq!(again.lock("bob").failures, 2);
    }

    #[test]
    fn records_reach_the_file_before_returning() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut j = open(&path);
        j.set_totp_step("alice", "T1", 42).unwrap();
        j.set_lock("alice", LockState { failures: 1, locked_until: 9 }).unwrap();
        j.unlock("alice").unwrap();
        j.set_hotp_counter("alice", "H\"1", 3).unwrap();
        j.forget("x").unwrap();
        // Read behind the journal's back, while it is still open (as after kill -9).
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"k\":\"totp\",\"u\":\"alice\",\"s\":\"T1\",\"v\":42}\n\
             {\"k\":\"lock\",\"u\":\"alice\",\"f\":1,\"until\":9}\n\
             {\"k\":\"unlock\",\"u\":\"alice\"}\n\
             {\"k\":\"hotp\",\"u\":\"alice\",\"s\":\"H\\\"1\",\"v\":3}\n\
             {\"k\":\"forget\",\"u\":\"x\"}\n"
        );
        drop(j);
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
    fn two_journals_see_each_other() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut module = open(&path);
        let mut admin = open(&path);

        module.set_totp_step("alice", "T1", 100).unwrap();
        module.set_lock("alice", LockState { failures: 3, locked_until: 500 }).unwrap();
        assert_eq!(admin.token("alice", "T1"), TokenState::default());
        admin.refresh().unwrap();
        assert_eq!(admin.token("alice", "T1"), totp(100));
        assert_eq!(admin.lock("alice").failures, 3);

        admin.unlock("alice").unwrap();
        admin.set_hotp_counter("alice", "H1", 20).unwrap();
        module.refresh().unwrap();
        assert_eq!(module.lock("alice"), LockState::default());
        assert_eq!(module.token("alice", "H1").next_counter, 20);

        // A writer catches up before appending, so a claim sees the other's step.
        admin.set_totp_step("alice", "T1", 105).unwrap();
        assert!(!module.claim_totp_step("alice", "T1", 105).unwrap());
        assert_eq!(module.token("alice", "T1"), totp(105));

        // Refresh with nothing new is a no-op.
        module.refresh().unwrap();
        assert_eq!(module.token("alice", "T1"), totp(105));
    }

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

    #[test]
    fn concurrent_claims_never_succeed_twice_across_compactions() {
        let dir = new_dir();
        let path = dir.journal_path();
        open(&path);
        let opts = JournalOptions { fsync: false, compact_after: 25 };
        let won: u64 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut j = StateJournal::open(&path, opts).unwrap();
                        let mut won = 0;
                        for _ in 0..150 {
                            j.refresh().unwrap();
                            let next = j.token("alice", "H1").next_counter + 1;
                            // Exactly one writer can move the counter from n to n + 1.
                            if j.claim_hotp_counter("alice", "H1", next).unwrap() {
                                won += 1;
                            }
                        }
                        won
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert!(won > 0);
        assert_eq!(open(&path).token("alice", "H1").next_counter, won);
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

//! Why the journal could not be read or written; a state we cannot read is an
//! error, never "empty".

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum JournalError {
    /// A file operation failed; `action` is a verb phrase such as "append to".
    Io { path: PathBuf, action: &'static str, source: io::Error },
    /// A complete line that is not a valid record.
    Corrupt { path: PathBuf, line: u64, reason: String },
    /// The file can be written by its group or by anyone: whoever can would
    /// append unlock or forget records, or used steps set back.
    Permissions { path: PathBuf, mode: u32 },
    /// Not an error of the call that found it: the file was shorter than what had
    /// been read of it (truncated in place), and was written back from memory.
    Shrunk { path: PathBuf, read: u64, found: u64 },
    /// One user holds as many answered States as one user may (a flood of
    /// challenge answers): this answer is refused, other users' are not.
    TooManyAnswered { user: String, held: u32 },
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
            JournalError::Shrunk { path, read, found } => write!(
                f,
                "state journal {} shrank in place from {read} to {found} bytes (truncated by something \
                 other than rlm_mfa): damage; the state held in memory was written back, so no used code \
                 becomes good again",
                path.display()
            ),
            JournalError::TooManyAnswered { user, held } => write!(
                f,
                "\"{user}\" already holds {held} answered challenge States that have not expired (the most \
                 one user may): a flood of challenge answers; this one is refused until some expire"
            ),
            JournalError::Permissions { path, mode } => write!(
                f,
                "state journal {} can be written by its group or other users (mode {mode:04o}), who could \
                 unlock users or make used codes good again; run: chmod 600 {}",
                path.display(),
                path.display()
            ),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } => Some(source),
            JournalError::Corrupt { .. }
            | JournalError::Permissions { .. }
            | JournalError::Shrunk { .. }
            | JournalError::TooManyAnswered { .. } => None,
        }
    }
}

pub(super) fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io { path: path.to_path_buf(), action, source }
}

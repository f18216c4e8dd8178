//! Why the token file, or a value for it, was refused: in words that name the
//! file, user, token and field, never a secret.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::factor::secret::SecretError;
use crate::store::atomic::AtomicError;

/// Why the token file (or a value for it) was refused.
#[derive(Debug)]
pub enum TokenError {
    /// A file operation failed; `action` is a verb such as "read" or "rename".
    Io { path: PathBuf, action: &'static str, source: io::Error },
    /// The token file is readable (or writable) by users outside its owner and group.
    Permissions { path: PathBuf, mode: u32 },
    /// Malformed JSON, an unknown or missing field, or a bad secret.
    Syntax { path: Option<PathBuf>, user: Option<String>, message: String },
    /// A well-formed value that is out of range or inconsistent.
    Invalid { path: Option<PathBuf>, user: String, serial: Option<String>, field: &'static str, reason: String },
    /// A secret given on its own (not inside a file) is unusable.
    Secret(&'static str),
    /// The operating system's random source failed.
    Random(String),
}

impl TokenError {
    /// Attaches the file name to a parse error so the admin knows which file to fix.
    pub(super) fn in_file(mut self, file: &Path) -> Self {
        match &mut self {
            TokenError::Syntax { path, .. } | TokenError::Invalid { path, .. } => *path = Some(file.to_path_buf()),
            _ => {}
        }
        self
    }

    pub(super) fn invalid(user: &str, serial: Option<&str>, field: &'static str, reason: String) -> Self {
        TokenError::Invalid { path: None, user: user.to_owned(), serial: serial.map(str::to_owned), field, reason }
    }
}

pub(super) fn io_error(action: &'static str, path: &Path, source: io::Error) -> TokenError {
    TokenError::Io { path: path.to_path_buf(), action, source }
}

fn file_prefix(f: &mut fmt::Formatter<'_>, path: &Option<PathBuf>) -> fmt::Result {
    match path {
        Some(p) => write!(f, "token file {}: ", p.display()),
        None => Ok(()),
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // User names and serials are printed with {:?} so that control characters
        // cannot forge extra lines in the FreeRADIUS log.
        match self {
            TokenError::Io { path, action, source } => write!(f, "cannot {action} {}: {source}", path.display()),
            TokenError::Permissions { path, mode } => write!(
                f,
                "token file {} has mode {mode:04o}, it must be 0640 or stricter (read only for its \
                 group, nothing for others); it holds secrets, run: chmod 640 {}",
                path.display(),
                path.display()
            ),
            TokenError::Syntax { path, user, message } => {
                file_prefix(f, path)?;
                if let Some(user) = user {
                    write!(f, "user {user:?}: ")?;
                }
                f.write_str(message)
            }
            TokenError::Invalid { path, user, serial, field, reason } => {
                file_prefix(f, path)?;
                write!(f, "user {user:?}")?;
                if let Some(serial) = serial {
                    write!(f, ", token {serial:?}")?;
                }
                write!(f, ", field \"{field}\": {reason}")
            }
            TokenError::Secret(reason) => f.write_str(reason),
            TokenError::Random(reason) => {
                write!(f, "the system random number generator failed: {reason}")
            }
        }
    }
}

impl From<SecretError> for TokenError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Invalid(reason) => TokenError::Secret(reason),
            SecretError::Random(reason) => TokenError::Random(reason),
        }
    }
}

impl From<AtomicError> for TokenError {
    fn from(e: AtomicError) -> Self {
        TokenError::Io { path: e.path, action: e.step.action(), source: e.source }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

//! Writing the token file to disk, atomically, keeping its owner and mode.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::io_error;
use super::{TokenDb, TokenError};
use crate::store::atomic::{self, Owner};

/// Mode of a token file we create: the FreeRADIUS group must be able to read it.
pub const NEW_FILE_MODE: u32 = 0o640;

impl TokenDb {
    /// Replaces the file atomically: a reader (the module reloading) sees either
    /// the old or the new file, never half of one. An existing file keeps its
    /// owner, group and mode; a new one gets mode 0640 and its directory's group
    /// (where FreeRADIUS's group is expected to be), as a setgid directory would.
    pub fn save(&self, path: &Path) -> Result<(), TokenError> {
        let mut text = self.to_json().into_bytes();
        let result = write_atomically(path, &text);
        text.fill(0);
        std::hint::black_box(&text);
        result
    }
}

/// An existing file keeps its owner and group (without them FreeRADIUS might no
/// longer read it) and its mode.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TokenError> {
    let (mode, owner) = match fs::metadata(path) {
        Ok(meta) => (meta.mode() & 0o7777, Owner::Exactly { uid: meta.uid(), gid: meta.gid() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (NEW_FILE_MODE, Owner::DirectoryGroup),
        Err(e) => return Err(io_error("inspect the token file", path, e)),
    };
    atomic::replace(path, bytes, mode, owner).map_err(TokenError::from)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::ALICE;
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn save_and_load_round_trip_keeping_the_mode() {
        let dir = TempDir::new("tokens");
        let db = TokenDb::parse(ALICE).unwrap();

        let fresh = dir.0.join("new.json");
        db.save(&fresh).unwrap();
        assert_eq!(fs::metadata(&fresh).unwrap().mode() & 0o7777, NEW_FILE_MODE);

        let existing = dir.file("tokens.json", "{\"users\": {}}", 0o600);
        db.save(&existing).unwrap();
        assert_eq!(fs::metadata(&existing).unwrap().mode() & 0o7777, 0o600);
        let back = TokenDb::load(&existing).unwrap();
        assert_eq!(back.to_json(), db.to_json());
        let t = back.user("alice").unwrap().token("TOTP-3F9A2C10").unwrap();
        assert_eq!(t.secret.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(t.description.as_deref(), Some("phone"));
        // Nothing left behind but the two files.
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 2);
        // HOTP tokens have no period in the file; defaults are written out.
        let text = fs::read_to_string(&existing).unwrap();
        assert!(text.ends_with("}\n"));
        let hotp_at = text.find("HOTP-0001").unwrap();
        assert!(!text[hotp_at..].contains("period"));
    }
}

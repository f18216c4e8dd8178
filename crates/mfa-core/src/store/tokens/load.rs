//! Reading the token file from disk: refused when users outside its owner and
//! group can access it, and its raw text wiped once parsed.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::error::io_error;
use super::{TokenDb, TokenError};

impl TokenDb {
    /// Reads the token file, refusing it unless its mode is 0640 or stricter (no
    /// access for others, read only for the group). Checked on every load: the
    /// module's start and each reload, and every mfa-admin command.
    pub fn load(path: &Path) -> Result<TokenDb, TokenError> {
        let mut file = File::open(path).map_err(|e| io_error("open the token file", path, e))?;
        let meta = file.metadata().map_err(|e| io_error("inspect the token file", path, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o037 != 0 {
            return Err(TokenError::Permissions { path: path.to_path_buf(), mode });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        let read = file.read_to_end(&mut bytes);
        let parsed = read
            .map_err(|e| io_error("read the token file", path, e))
            .and_then(|_| Self::parse_bytes(&bytes).map_err(|e| e.in_file(path)));
        // The raw text holds every secret; wipe it before the buffer is freed.
        bytes.fill(0);
        std::hint::black_box(&bytes);
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{one_token, ALICE};
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = TempDir::new("tokens");
        for mode in [0o644, 0o604, 0o602, 0o601, 0o660, 0o650, 0o620] {
            let path = dir.file("tokens.json", ALICE, mode);
            let err = TokenDb::load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, TokenError::Permissions { .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(msg.contains("chmod 640"), "{msg}");
        }
        for mode in [0o640, 0o600, 0o440, 0o400] {
            let path = dir.file("tokens.json", ALICE, mode);
            assert_eq!(TokenDb::load(&path).unwrap().len(), 1, "{mode:o}");
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = TempDir::new("tokens");
        let missing = dir.0.join("missing.json");
        let msg = TokenDb::load(&missing).unwrap_err().to_string();
        assert!(msg.contains("missing.json"), "{msg}");
        let path = dir.file("bad.json", &one_token(r#", "digits": 9"#), 0o600);
        let msg = TokenDb::load(&path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()) && msg.contains("digits"), "{msg}");
        let path = dir.file("syntax.json", "{\"users\": {", 0o600);
        let msg = TokenDb::load(&path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
}

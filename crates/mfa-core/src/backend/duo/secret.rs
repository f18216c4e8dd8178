//! The secret key: written in the configuration (FreeRADIUS hides it as a
//! secret item), or in a file that only FreeRADIUS may read, like the token
//! file (mode 0640 or stricter), read once at start-up.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::duo::check_secret_key;

/// The key in `path` (one line), refused when others may read the file or it is
/// writable by its group. Errors name the file, never its content.
pub fn read(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot inspect {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o027 != 0 {
        return Err(format!("{shown} has mode {mode:04o}, it must be 0640 or stricter (readable by FreeRADIUS only)"));
    }
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let key = text.trim_end_matches(['\n', '\r']).to_string();
    check_secret_key(&key).map_err(|why| format!("{shown}: {why}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_read_and_a_public_one_refused() {
        let dir = crate::testutil::TempDir::new("duo-skey");
        let path = dir.file("skey", "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep\n", 0o640);
        assert_eq!(read(&path).unwrap(), "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep");
        let open = dir.file("open", "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep\n", 0o644);
        let why = read(&open).unwrap_err();
        assert!(why.contains("0644") && !why.contains("Zh5e"), "{why}");
        let spaced = dir.file("spaced", "Zh5e GmUq\n", 0o600);
        assert!(!read(&spaced).unwrap_err().contains("Zh5e"));
        assert!(read(&dir.path().join("missing")).is_err());
    }
}

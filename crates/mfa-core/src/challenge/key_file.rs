//! The State key's file: read it, or create it once for every server and
//! thread that starts at the same time.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use data_encoding::{HEXLOWER, HEXLOWER_PERMISSIVE};

use super::key::{StateKey, KEY_LEN};
use crate::store::atomic::{self, Step};

/// The key file is module-owned; nobody else needs to read it.
const KEY_FILE_MODE: u32 = 0o600;

impl StateKey {
    /// Reads the key file (64 hexadecimal characters, optionally a trailing
    /// newline), or creates it with a new random key, mode 0600.
    ///
    /// Creation writes and syncs a temporary file and then hard-links it to
    /// `path`: the link fails if the file exists, so of several servers (or
    /// threads) starting at once exactly one key wins, the others read it, and
    /// nobody ever sees a half-written key. A file that its group or other users
    /// can access is refused, since whoever has the key can forge States.
    /// Errors name the path, never the key.
    pub fn load_or_create(path: &Path) -> Result<StateKey, String> {
        match read_key(path) {
            Err(KeyFileError::Missing) => {}
            other => return other.map_err(|e| e.describe(path)),
        }
        match create_key(path) {
            Ok(key) => Ok(key),
            // Another process or thread created it first: use theirs.
            Err(KeyFileError::Exists) => read_key(path).map_err(|e| e.describe(path)),
            Err(e) => Err(e.describe(path)),
        }
    }
}

/// Why the key file could not be used; turned into words by `describe`.
enum KeyFileError {
    Missing,
    Exists,
    Io(&'static str, io::Error),
    /// Creating the key failed at its temporary file.
    Temp(&'static str, PathBuf, io::Error),
    /// The final hard link failed (not because the file exists).
    Link(io::Error),
    NotFile,
    Permissions(u32),
    Garbage(String),
    Random(String),
}

impl KeyFileError {
    fn describe(self, path: &Path) -> String {
        let p = path.display();
        match self {
            KeyFileError::Missing => format!("state key file {p} does not exist"),
            KeyFileError::Exists => format!("state key file {p} already exists"),
            KeyFileError::Io(action, e) => format!("cannot {action} {p}: {e}"),
            KeyFileError::Temp(action, tmp, e) => {
                format!("cannot create state key file {p}: cannot {action} {}: {e}", tmp.display())
            }
            KeyFileError::Link(e) => format!(
                "cannot create state key file {p} by a hard link from a temporary file in the \
                 same directory: {e}; where the file system has no hard links, write the key by \
                 hand (64 hexadecimal characters, mode 0600)"
            ),
            KeyFileError::NotFile => format!("state key file {p} is not a regular file"),
            KeyFileError::Permissions(mode) => format!(
                "state key file {p} can be accessed by its group or other users (mode {mode:04o}); \
                 whoever reads it can forge challenge States, run: chmod 600 {p}"
            ),
            KeyFileError::Garbage(what) => format!(
                "state key file {p} does not hold a key ({what}); it must contain exactly 64 \
                 hexadecimal characters (32 bytes): copy the file from a server that shares \
                 dialogues with this one, or remove it to have a new key created"
            ),
            KeyFileError::Random(e) => {
                format!("cannot create state key file {p}: the system random number generator failed: {e}")
            }
        }
    }
}

fn read_key(path: &Path) -> Result<StateKey, KeyFileError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(KeyFileError::Missing),
        Err(e) => return Err(KeyFileError::Io("open state key file", e)),
    };
    let meta = file.metadata().map_err(|e| KeyFileError::Io("inspect state key file", e))?;
    if !meta.is_file() {
        return Err(KeyFileError::NotFile);
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions(mode));
    }
    // A little more than a key and a newline: enough to tell a longer file.
    let mut text = Vec::with_capacity(80);
    let read = file.take(80).read_to_end(&mut text);
    let parsed = read.map_err(|e| KeyFileError::Io("read state key file", e)).and_then(|_| parse_key(&text));
    text.fill(0);
    std::hint::black_box(&text);
    parsed
}

fn parse_key(text: &[u8]) -> Result<StateKey, KeyFileError> {
    let hex = text.strip_suffix(b"\r\n").or_else(|| text.strip_suffix(b"\n")).unwrap_or(text);
    if hex.is_empty() {
        return Err(KeyFileError::Garbage("it is empty".into()));
    }
    if hex.len() != 2 * KEY_LEN {
        let found = if text.len() >= 80 { "more than 64".to_string() } else { hex.len().to_string() };
        return Err(KeyFileError::Garbage(format!("found {found} characters")));
    }
    let mut key = [0u8; KEY_LEN];
    match HEXLOWER_PERMISSIVE.decode_mut(hex, &mut key) {
        Ok(_) => Ok(StateKey(key)),
        // Say what is wrong, never what the file holds.
        Err(_) => Err(KeyFileError::Garbage("a character is not hexadecimal".into())),
    }
}

fn create_key(path: &Path) -> Result<StateKey, KeyFileError> {
    let mut key = [0u8; KEY_LEN];
    getrandom::getrandom(&mut key).map_err(|e| KeyFileError::Random(e.to_string()))?;
    let key = StateKey(key);
    write_and_link(path, &key).map(|()| key)
}

fn write_and_link(path: &Path, key: &StateKey) -> Result<(), KeyFileError> {
    let mut text = HEXLOWER.encode(&key.0).into_bytes();
    text.push(b'\n');
    // A hard link never replaces an existing name: the first creator wins.
    let written = atomic::create(path, &text, KEY_FILE_MODE);
    text.fill(0);
    std::hint::black_box(&text);
    written.map_err(|e| match e.step {
        _ if e.target_exists() => KeyFileError::Exists,
        Step::Link => KeyFileError::Link(e.source),
        Step::SyncDirectory => KeyFileError::Io("sync the directory of state key file", e.source),
        step => KeyFileError::Temp(step.action(), e.path, e.source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Barrier};

    use crate::challenge::test_support::{binding, dialogue, NOW};
    use crate::challenge::{seal, unseal};
    use crate::testutil::TempDir;

    #[test]
    fn key_file_is_created_private_and_read_back() {
        let dir = TempDir::new("chal-key");
        let path = dir.path().join("state.key");
        let first = StateKey::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(text[..64].bytes().all(|b| b.is_ascii_hexdigit()));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        let second = StateKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, second.0);
        let state = seal(&first, &binding(), &dialogue());
        assert_eq!(unseal(&second, &binding(), NOW, &state).unwrap().0, dialogue());
    }

    #[test]
    fn key_file_written_by_hand_is_read() {
        let dir = TempDir::new("chal-key");
        let hex = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
        for text in [hex.to_string(), format!("{hex}\n"), format!("{hex}\r\n")] {
            let path = dir.file("state.key", &text, 0o600);
            let k = StateKey::load_or_create(&path).unwrap();
            assert_eq!(k.0[..4], [0x00, 0x11, 0x22, 0x33]);
            assert_eq!(k.0[31], 0xff);
        }
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let dir = TempDir::new("chal-key");
        let hex = "ab".repeat(32);
        let path = dir.file("state.key", &hex, 0o644);
        let err = StateKey::load_or_create(&path).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("0644"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains(&hex), "{err}");
        // And it was not replaced by a new key.
        assert_eq!(fs::read_to_string(&path).unwrap(), hex);
    }

    #[test]
    fn garbage_key_file_is_refused_without_echoing_it() {
        let dir = TempDir::new("chal-key");
        let secretish = "zz".repeat(32);
        for text in [
            "",
            "\n",
            "0123",
            secretish.as_str(),
            &"ab".repeat(33),
            &format!("{}\n\n", "ab".repeat(32)),
            &format!(" {}", "ab".repeat(32)),
        ] {
            let path = dir.file("state.key", text, 0o600);
            let err = StateKey::load_or_create(&path).unwrap_err();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("64 hexadecimal characters"), "{err}");
            assert!(!err.contains(&secretish), "{err}");
            assert_eq!(fs::read_to_string(&path).unwrap(), text, "the file must be left alone");
        }
    }

    #[test]
    fn key_file_errors_name_the_path() {
        let dir = TempDir::new("chal-key");
        let missing_dir = dir.path().join("no-such-dir").join("state.key");
        let err = StateKey::load_or_create(&missing_dir).unwrap_err();
        assert!(err.contains("no-such-dir"), "{err}");
        let err = StateKey::load_or_create(dir.path()).unwrap_err();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn concurrent_creators_agree_on_one_key() {
        let dir = TempDir::new("chal-key");
        let path = dir.path().join("state.key");
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    StateKey::load_or_create(&path).unwrap().0
                })
            })
            .collect();
        let keys: Vec<[u8; 32]> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(keys.iter().all(|k| *k == keys[0]));
        let on_disk = StateKey::load_or_create(&path).unwrap();
        assert_eq!(on_disk.0, keys[0]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

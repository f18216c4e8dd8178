//! The RADIUS State of a challenge: the whole dialogue, sealed with XChaCha20-Poly1305.
//!
//! Every server that holds the same key file can check and continue a dialogue
//! another began, so a NAS may fail over between servers mid-login; no dialogue
//! table has to be shared. A State is bound to the module instance, the user and
//! the NAS (by hash, so that it fits one attribute whatever their lengths), carries
//! its own expiry, and has a random id so that each node accepts it only once.
//!
//! Layout (version 1, always 127 bytes):
//! `[version][24-byte nonce][86-byte ciphertext][16-byte tag]`; the version byte
//! is the AEAD's associated data. The plaintext is
//! `instance hash(16) user hash(16) NAS hash(16) id(16) expires(8, big-endian)
//! stage(1) method(1) round(1) code length(1, 0xFF = none) code(10, zero padded)`.
//! The code field has a fixed size so that the State's length tells nothing of it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use data_encoding::{HEXLOWER, HEXLOWER_PERMISSIVE};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::atomic::{self, Step};

mod transaction;
pub use transaction::{seal_transaction, unseal_transaction, Transaction, TX_STATE_LEN};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HASH_LEN: usize = 16;
/// The longest code sent by SMS or e-mail (config allows 4 to 10 digits).
pub const MAX_SENT_CODE: usize = 10;
const NO_CODE: u8 = 0xFF;

// Plaintext offsets.
const INSTANCE: usize = 0;
const USER: usize = INSTANCE + HASH_LEN;
const NAS: usize = USER + HASH_LEN;
const ID: usize = NAS + HASH_LEN;
const EXPIRES: usize = ID + 16;
const STAGE: usize = EXPIRES + 8;
const METHOD: usize = STAGE + 1;
const ROUND: usize = METHOD + 1;
const CODE_LEN: usize = ROUND + 1;
const CODE: usize = CODE_LEN + 1;
const PLAIN_LEN: usize = CODE + MAX_SENT_CODE;

/// Length of every State this version seals.
pub const STATE_LEN: usize = 1 + NONCE_LEN + PLAIN_LEN + TAG_LEN;
// One RADIUS attribute holds at most 253 bytes of value.
const _: () = assert!(STATE_LEN <= 253);

const KEY_LEN: usize = 32;
/// The key file is module-owned; nobody else needs to read it.
const KEY_FILE_MODE: u32 = 0o600;

// ---------------------------------------------------------------------------
// The key

/// The 32-byte key that seals States. Debug never shows it.
pub struct StateKey([u8; KEY_LEN]);

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

impl Drop for StateKey {
    fn drop(&mut self) {
        // Best effort: do not leave the key in freed memory.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

impl StateKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> StateKey {
        StateKey(bytes)
    }

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

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
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

// ---------------------------------------------------------------------------
// Sealing

/// What a State is bound to. The caller builds `nas` from the client's source
/// address, NAS-Identifier and NAS-IP-Address.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub instance: &'a str,
    pub user: &'a str,
    pub nas: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The user chooses a method.
    Menu,
    /// The user types a code.
    Code,
}

/// The dialogue a State carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Dialogue {
    pub stage: Stage,
    /// Which second-factor method (index into the user's method list, 0-based); 0 when not chosen.
    pub method: u8,
    /// Wrong answers so far in this dialogue.
    pub round: u8,
    /// Unix time after which the State is refused.
    pub expires: u64,
    /// A code sent by SMS or e-mail: ASCII digits, at most 10; None for app and
    /// hardware tokens. Secret, so Debug does not show it.
    pub sent_code: Option<String>,
}

impl fmt::Debug for Dialogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialogue")
            .field("stage", &self.stage)
            .field("method", &self.method)
            .field("round", &self.round)
            .field("expires", &self.expires)
            .field("sent_code", &self.sent_code.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a State was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// Wrong length or version: not a State of this module.
    Malformed,
    /// The seal does not open: another key, or altered bytes.
    Forged,
    Expired,
    OtherInstance,
    OtherUser,
    OtherNas,
    Reused,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateError::Malformed => "the State is not one this module issues (wrong length or version)",
            StateError::Forged => "the State was not issued by this module or was altered",
            StateError::Expired => "the State has expired",
            StateError::OtherInstance => "the State belongs to another instance of the module",
            StateError::OtherUser => "the State belongs to another user",
            StateError::OtherNas => "the State belongs to another NAS",
            StateError::Reused => "the State was already used",
        })
    }
}

impl std::error::Error for StateError {}

/// First 16 bytes of SHA-256 over a domain-separated, length-prefixed field, so
/// that no two (label, value) pairs hash the same input.
fn binding_hash(label: &str, value: &str) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    h.update(b"rlm_mfa State binding v1\0");
    h.update(label.as_bytes());
    h.update(b"\0");
    h.update((value.len() as u64).to_be_bytes());
    h.update(value.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(&digest[..HASH_LEN]);
    out
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Without randomness a nonce could repeat and the key would be exposed: stop.
    getrandom::getrandom(&mut bytes).expect("the system random number generator failed");
    bytes
}

/// Seals `dialogue` for `binding`: always [`STATE_LEN`] bytes (127, within the
/// 253 of one RADIUS attribute).
///
/// # Panics
/// If `sent_code` is longer than 10 characters or not ASCII digits (the caller
/// makes the codes), or if the system random number generator fails.
pub fn seal(key: &StateKey, binding: &Binding, dialogue: &Dialogue) -> Vec<u8> {
    let mut plain = [0u8; PLAIN_LEN];
    plain[INSTANCE..USER].copy_from_slice(&binding_hash("instance", binding.instance));
    plain[USER..NAS].copy_from_slice(&binding_hash("user", binding.user));
    plain[NAS..ID].copy_from_slice(&binding_hash("nas", binding.nas));
    plain[ID..EXPIRES].copy_from_slice(&random::<16>());
    plain[EXPIRES..STAGE].copy_from_slice(&dialogue.expires.to_be_bytes());
    plain[STAGE] = match dialogue.stage {
        Stage::Menu => 0,
        Stage::Code => 1,
    };
    plain[METHOD] = dialogue.method;
    plain[ROUND] = dialogue.round;
    match &dialogue.sent_code {
        None => plain[CODE_LEN] = NO_CODE,
        Some(code) => {
            assert!(
                code.len() <= MAX_SENT_CODE && code.bytes().all(|b| b.is_ascii_digit()),
                "a sent code must be at most {MAX_SENT_CODE} ASCII digits"
            );
            plain[CODE_LEN] = code.len() as u8;
            plain[CODE..CODE + code.len()].copy_from_slice(code.as_bytes());
        }
    }

    let nonce: [u8; NONCE_LEN] = random();
    let mut state = Vec::with_capacity(STATE_LEN);
    state.push(VERSION);
    state.extend_from_slice(&nonce);
    state.extend_from_slice(&plain);
    plain.fill(0);
    std::hint::black_box(&plain);
    let body = &mut state[1 + NONCE_LEN..];
    let tag = key
        .cipher()
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &[VERSION], body)
        .expect("a fixed-size plaintext is within the AEAD's limit");
    state.extend_from_slice(&tag);
    debug_assert_eq!(state.len(), STATE_LEN);
    state
}

/// Opens and checks a State; returns the dialogue and its 16-byte id.
///
/// Binding mismatches are reported before expiry: a State presented by another
/// user or NAS is worth knowing about even when it is old. Does not check single
/// use (see [`UsedStates`]), so that the caller decides when the State is spent.
pub fn unseal(key: &StateKey, binding: &Binding, now: u64, state: &[u8]) -> Result<(Dialogue, [u8; 16]), StateError> {
    if state.len() != STATE_LEN || state[0] != VERSION {
        return Err(StateError::Malformed);
    }
    let nonce = &state[1..1 + NONCE_LEN];
    let (body, tag) = state[1 + NONCE_LEN..].split_at(PLAIN_LEN);
    let mut plain = [0u8; PLAIN_LEN];
    plain.copy_from_slice(body);
    let opened =
        key.cipher().decrypt_in_place_detached(XNonce::from_slice(nonce), &[VERSION], &mut plain, Tag::from_slice(tag));
    let result = match opened {
        Ok(()) => check(&plain, binding, now),
        Err(_) => Err(StateError::Forged),
    };
    plain.fill(0);
    std::hint::black_box(&plain);
    result
}

fn check(plain: &[u8; PLAIN_LEN], binding: &Binding, now: u64) -> Result<(Dialogue, [u8; 16]), StateError> {
    let same = |range: std::ops::Range<usize>, label: &str, value: &str| -> bool {
        bool::from(plain[range].ct_eq(&binding_hash(label, value)))
    };
    if !same(INSTANCE..USER, "instance", binding.instance) {
        return Err(StateError::OtherInstance);
    }
    if !same(USER..NAS, "user", binding.user) {
        return Err(StateError::OtherUser);
    }
    if !same(NAS..ID, "nas", binding.nas) {
        return Err(StateError::OtherNas);
    }
    let mut expires = [0u8; 8];
    expires.copy_from_slice(&plain[EXPIRES..STAGE]);
    let expires = u64::from_be_bytes(expires);
    if now > expires {
        return Err(StateError::Expired);
    }
    // Authentic but not understood: only a key holder with another layout could
    // have made it.
    let stage = match plain[STAGE] {
        0 => Stage::Menu,
        1 => Stage::Code,
        _ => return Err(StateError::Malformed),
    };
    let sent_code = match plain[CODE_LEN] {
        NO_CODE => None,
        n if usize::from(n) <= MAX_SENT_CODE => {
            let code = &plain[CODE..CODE + usize::from(n)];
            if !code.iter().all(u8::is_ascii_digit) {
                return Err(StateError::Malformed);
            }
            Some(code.iter().map(|&b| char::from(b)).collect())
        }
        _ => return Err(StateError::Malformed),
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(&plain[ID..EXPIRES]);
    let dialogue = Dialogue { stage, method: plain[METHOD], round: plain[ROUND], expires, sent_code };
    Ok((dialogue, id))
}

// ---------------------------------------------------------------------------
// Single use

/// The ids of States already answered on this node, kept until they expire
/// (after that, `unseal` refuses the State anyway). Thread-safe.
pub struct UsedStates {
    capacity: usize,
    inner: Mutex<Used>,
}

#[derive(Default)]
struct Used {
    ids: HashMap<[u8; 16], u64>,
    /// The same entries, soonest expiry first: purging pops only what expired,
    /// so each entry costs O(log n) once and no call scans the table.
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 16])>>,
}

impl fmt::Debug for UsedStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = self.lock().ids.len();
        f.debug_struct("UsedStates").field("capacity", &self.capacity).field("live", &live).finish()
    }
}

impl UsedStates {
    /// A table of at most `capacity` live entries (memory grows as needed).
    pub fn new(capacity: usize) -> Self {
        // Allocated whole at start (about 6 MB for 100,000): a table that doubled as
        // logins came would make memory grow in steps long after start-up.
        UsedStates {
            capacity,
            inner: Mutex::new(Used {
                ids: HashMap::with_capacity(capacity),
                by_expiry: BinaryHeap::with_capacity(capacity),
            }),
        }
    }

    /// The table of the module instance `instance` whose States `key_file` seals:
    /// the same table for every engine of that instance alive at once, so that a
    /// State answered just before a HUP rebuilt the instance stays answered after it.
    pub fn shared(instance: &str, key_file: &Path, capacity: usize) -> std::sync::Arc<UsedStates> {
        use std::sync::{Arc, OnceLock, Weak};
        /// (instance name, key file) to the table its live engines share.
        type Tables = HashMap<(String, PathBuf), Weak<UsedStates>>;
        static TABLES: OnceLock<Mutex<Tables>> = OnceLock::new();
        let mut tables = TABLES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        tables.retain(|_, table| table.strong_count() > 0);
        let name = (instance.to_string(), key_file.to_path_buf());
        if let Some(table) = tables.get(&name).and_then(Weak::upgrade) {
            return table;
        }
        let table = Arc::new(UsedStates::new(capacity));
        tables.insert(name, Arc::downgrade(&table));
        table
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        // A panic elsewhere cannot leave the table inconsistent in a way that lets
        // an id through: at worst a slot stays taken until its expiry.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `id` used. Returns false (refuse) if it was used before, if
    /// `expires` has already passed, or if the table is full of unexpired
    /// entries (fail closed: better a user retries than a State is replayed).
    #[must_use]
    pub fn use_once(&self, id: [u8; 16], expires: u64, now: u64) -> bool {
        if now > expires {
            return false;
        }
        let mut used = self.lock();
        while let Some(&Reverse((when, old))) = used.by_expiry.peek() {
            if when >= now {
                break;
            }
            used.by_expiry.pop();
            if used.ids.get(&old) == Some(&when) {
                used.ids.remove(&old);
            }
        }
        if used.ids.contains_key(&id) || used.ids.len() >= self.capacity {
            return false;
        }
        used.by_expiry.push(Reverse((expires, id)));
        used.ids.insert(id, expires);
        true
    }

    /// Entries currently remembered (expired ones may linger until the next call).
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Barrier};

    use crate::testutil::TempDir;

    const NOW: u64 = 1_700_000_000;

    fn key(n: u8) -> StateKey {
        StateKey::from_bytes([n; 32])
    }

    fn binding() -> Binding<'static> {
        Binding { instance: "mfa", user: "alice", nas: "192.0.2.1|vpn-1|192.0.2.1" }
    }

    fn dialogue() -> Dialogue {
        Dialogue { stage: Stage::Code, method: 2, round: 1, expires: NOW + 120, sent_code: Some("0123456789".into()) }
    }

    #[test]
    fn round_trip() {
        let k = key(1);
        for d in [
            dialogue(),
            Dialogue { stage: Stage::Menu, method: 0, round: 0, expires: NOW, sent_code: None },
            Dialogue { sent_code: Some(String::new()), ..dialogue() },
            Dialogue { method: 255, round: 255, expires: u64::MAX, sent_code: Some("0042".into()), ..dialogue() },
        ] {
            let state = seal(&k, &binding(), &d);
            assert_eq!(state.len(), STATE_LEN);
            let (opened, _id) = unseal(&k, &binding(), NOW, &state).unwrap();
            assert_eq!(opened, d);
        }
    }

    #[test]
    fn other_key_is_forged() {
        let state = seal(&key(1), &binding(), &dialogue());
        assert_eq!(unseal(&key(2), &binding(), NOW, &state), Err(StateError::Forged));
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let k = key(1);
        let state = seal(&k, &binding(), &dialogue());
        for i in 0..state.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = state.clone();
                bad[i] ^= bit;
                let expected = if i == 0 { StateError::Malformed } else { StateError::Forged };
                assert_eq!(unseal(&k, &binding(), NOW, &bad), Err(expected), "byte {i}");
            }
        }
    }

    #[test]
    fn wrong_lengths_and_random_bytes_are_refused() {
        let k = key(1);
        let state = seal(&k, &binding(), &dialogue());
        for len in 0..state.len() {
            assert_eq!(unseal(&k, &binding(), NOW, &state[..len]), Err(StateError::Malformed));
        }
        let mut longer = state.clone();
        longer.push(0);
        assert_eq!(unseal(&k, &binding(), NOW, &longer), Err(StateError::Malformed));

        let noise: [u8; 253] = random();
        assert_eq!(unseal(&k, &binding(), NOW, &noise), Err(StateError::Malformed));
        let mut noise: [u8; STATE_LEN] = random();
        noise[0] = VERSION;
        assert_eq!(unseal(&k, &binding(), NOW, &noise), Err(StateError::Forged));
    }

    #[test]
    fn expired_state_is_refused() {
        let k = key(1);
        let state = seal(&k, &binding(), &dialogue());
        assert!(unseal(&k, &binding(), NOW + 120, &state).is_ok());
        assert_eq!(unseal(&k, &binding(), NOW + 121, &state), Err(StateError::Expired));
    }

    #[test]
    fn state_of_another_instance_user_or_nas_is_refused() {
        let k = key(1);
        let state = seal(&k, &binding(), &dialogue());
        let check = |b: Binding| unseal(&k, &b, NOW, &state);
        assert_eq!(check(Binding { instance: "mfa2", ..binding() }), Err(StateError::OtherInstance));
        assert_eq!(check(Binding { user: "bob", ..binding() }), Err(StateError::OtherUser));
        assert_eq!(check(Binding { user: "Alice", ..binding() }), Err(StateError::OtherUser));
        assert_eq!(check(Binding { nas: "192.0.2.2|vpn-1|192.0.2.1", ..binding() }), Err(StateError::OtherNas));
        // The fields are hashed separately: moving text between them does not match.
        let moved = Binding { instance: "mfaalice", user: "", ..binding() };
        assert_eq!(check(moved), Err(StateError::OtherInstance));
        // A mismatch is reported even when the State is also old.
        assert_eq!(unseal(&k, &Binding { user: "bob", ..binding() }, NOW + 1000, &state), Err(StateError::OtherUser));
    }

    #[test]
    fn long_user_and_nas_still_fit_one_attribute() {
        let k = key(1);
        let long = "x".repeat(253);
        let b = Binding { instance: &long, user: &long, nas: &long };
        let state = seal(&k, &b, &dialogue());
        assert!(state.len() <= 253);
        assert_eq!(unseal(&k, &b, NOW, &state).unwrap().0, dialogue());
    }

    #[test]
    fn each_seal_has_its_own_nonce_and_id() {
        let k = key(1);
        let a = seal(&k, &binding(), &dialogue());
        let b = seal(&k, &binding(), &dialogue());
        assert_ne!(a, b);
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
        let (_, id_a) = unseal(&k, &binding(), NOW, &a).unwrap();
        let (_, id_b) = unseal(&k, &binding(), NOW, &b).unwrap();
        assert_ne!(id_a, id_b);
    }

    #[test]
    #[should_panic(expected = "ASCII digits")]
    fn sealing_a_code_that_does_not_fit_panics() {
        let d = Dialogue { sent_code: Some("01234567890".into()), ..dialogue() };
        seal(&key(1), &binding(), &d);
    }

    #[test]
    fn debug_hides_key_and_sent_code() {
        let k = StateKey::from_bytes([0xAB; 32]);
        let shown = format!("{k:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");

        let shown = format!("{:?}", dialogue());
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("0123456789"), "{shown}");
        let shown = format!("{:?}", Dialogue { sent_code: None, ..dialogue() });
        assert!(shown.contains("sent_code: None"), "{shown}");
    }

    #[test]
    fn errors_read_as_plain_words() {
        assert_eq!(StateError::Forged.to_string(), "the State was not issued by this module or was altered");
        assert_eq!(StateError::OtherUser.to_string(), "the State belongs to another user");
        assert_eq!(StateError::OtherNas.to_string(), "the State belongs to another NAS");
        assert_eq!(StateError::Expired.to_string(), "the State has expired");
        assert_eq!(StateError::Reused.to_string(), "the State was already used");
    }

    // -- key file

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

    // -- single use

    fn id(n: u32) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id
    }

    #[test]
    fn second_use_is_refused() {
        let used = UsedStates::new(10);
        assert!(used.use_once(id(1), NOW + 60, NOW));
        assert!(!used.use_once(id(1), NOW + 60, NOW));
        assert!(!used.use_once(id(1), NOW + 60, NOW + 60));
        assert!(used.use_once(id(2), NOW + 60, NOW));
    }

    #[test]
    fn already_expired_id_is_refused() {
        let used = UsedStates::new(10);
        assert!(!used.use_once(id(1), NOW - 1, NOW));
        assert!(used.is_empty());
    }

    #[test]
    fn full_table_refuses_until_entries_expire() {
        let used = UsedStates::new(3);
        assert!(used.use_once(id(1), NOW + 10, NOW));
        assert!(used.use_once(id(2), NOW + 20, NOW));
        assert!(used.use_once(id(3), NOW + 30, NOW));
        assert!(!used.use_once(id(4), NOW + 30, NOW), "full: fail closed");
        assert_eq!(used.len(), 3);
        // At NOW + 10 the first entry is still live (its State is still accepted).
        assert!(!used.use_once(id(4), NOW + 30, NOW + 10));
        // After it, the first entry is purged and its slot is free again.
        assert!(used.use_once(id(4), NOW + 30, NOW + 11));
        assert_eq!(used.len(), 3);
        assert!(!used.use_once(id(5), NOW + 30, NOW + 11));
        // Purging only drops the expired: the others stay refused.
        assert!(!used.use_once(id(2), NOW + 20, NOW + 15));
        assert!(used.use_once(id(5), NOW + 40, NOW + 31));
        assert_eq!(used.len(), 1);
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let used = UsedStates::new(0);
        assert!(!used.use_once(id(1), NOW + 10, NOW));
    }

    #[test]
    fn used_states_are_shared_between_threads() {
        let used = Arc::new(UsedStates::new(1000));
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (used, barrier) = (used.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..100).filter(|&n| used.use_once(id(n), NOW + 60, NOW)).count()
                })
            })
            .collect();
        let accepted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(accepted, 100, "each id accepted exactly once over all threads");
    }

    #[test]
    fn sealed_state_is_spent_once() {
        let k = key(1);
        let used = UsedStates::new(10);
        let state = seal(&k, &binding(), &dialogue());
        let (d, state_id) = unseal(&k, &binding(), NOW, &state).unwrap();
        assert!(used.use_once(state_id, d.expires, NOW));
        let (d, state_id) = unseal(&k, &binding(), NOW + 5, &state).unwrap();
        assert!(!used.use_once(state_id, d.expires, NOW + 5));
    }
}

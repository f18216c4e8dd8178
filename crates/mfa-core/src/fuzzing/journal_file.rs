//! The state journal, loaded from whatever a file holds: `StateJournal::open`
//! on a scratch file (under `$TMPDIR`; a tmpfs is fastest).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::one_log_line;
use crate::store::journal::{JournalError, JournalOptions, LockState, StateJournal};

pub fn journal_file(data: &[u8]) {
    let path = scratch("journal");
    let twice_path = scratch("journal-twice");
    fs::write(&path, data).expect("write the scratch journal");
    let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;

    let journal = match StateJournal::open(&path, options()) {
        Ok(journal) => journal,
        Err(e) => {
            let JournalError::Corrupt { line, .. } = e else { panic!("only a corrupt line refuses a journal: {e}") };
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
            assert_eq!(fs::read(&path).unwrap(), data, "a refused journal is left as it was");
            let text = e.to_string();
            assert!(one_log_line(&text), "an error is one log line: {text:?}");
            return;
        }
    };
    // A torn last line (a writer that died mid-write) is cut off, the rest kept.
    assert_eq!(fs::read(&path).unwrap(), &data[..complete]);

    // Records are idempotent: the file replayed twice gives the same state.
    let once = compacted(journal);
    let mut doubled = data[..complete].to_vec();
    doubled.extend_from_slice(&data[..complete]);
    fs::write(&twice_path, &doubled).unwrap();
    let twice = StateJournal::open(&twice_path, options()).expect("the file twice loads too");
    assert_eq!(compacted(twice), once);
    // The compacted file holds the whole state: loaded and compacted, it stays the same.
    let reloaded = StateJournal::open(&path, options()).expect("a compacted journal loads");
    check_snapshot(&reloaded, &once);
    assert_eq!(compacted(reloaded), once);
}

fn options() -> JournalOptions {
    // Compaction only when asked for: each input is loaded, not grown.
    JournalOptions { fsync: false, compact_after: 0 }
}

/// Compacts the journal and returns the file it wrote.
fn compacted(mut journal: StateJournal) -> Vec<u8> {
    journal.compact().expect("compaction of a scratch journal");
    fs::read(journal.path()).unwrap()
}

/// Every record of the compacted file says what the journal answers.
fn check_snapshot(journal: &StateJournal, snapshot: &[u8]) {
    let mut users = Vec::new();
    for line in snapshot.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let record: serde_json::Value = serde_json::from_slice(line).expect("a written record is JSON");
        let field = |name: &str| record[name].clone();
        let user = field("u").as_str().expect("a record names its user").to_owned();
        let number = |name: &str| field(name).as_u64().expect("a number");
        match field("k").as_str() {
            Some("totp") => {
                let state = journal.token(&user, field("s").as_str().unwrap());
                assert_eq!(state.last_step, Some(number("v")));
            }
            Some("hotp") => {
                let state = journal.token(&user, field("s").as_str().unwrap());
                assert_eq!(state.next_counter, number("v"));
            }
            Some("lock") => {
                let lock = LockState { failures: number("f") as u32, locked_until: number("until") };
                assert_eq!(journal.lock(&user), lock);
            }
            other => panic!("a compacted journal holds only state, not {other:?}"),
        }
        users.push(user);
    }
    users.dedup();
    assert_eq!(journal.users(), users, "the snapshot names every user with state");
}

/// A file of this process and thread (the unit tests replay in parallel).
fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rlm_mfa-fuzz-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    });
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    let path = dir.join(format!("{name}-{thread}.jsonl"));
    remove(&path);
    path
}

fn remove(path: &Path) {
    let _ = fs::remove_file(path);
}

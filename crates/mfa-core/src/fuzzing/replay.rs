//! Replays the committed corpus and regressions through the target bodies
//! under plain `cargo test` (stable): how CI keeps them checked without nightly.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use super::TARGETS;

fn fuzz_dir() -> PathBuf {
    // The workspace's fuzz/ (this crate is crates/mfa-core).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (a missing directory has none).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(fuzz_dir().join(kind).join(target)) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.map(|e| e.expect("read a corpus directory").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut failed = Vec::new();
    let mut count = 0;
    for (target, body) in TARGETS {
        for file in inputs(kind, target) {
            let data = fs::read(&file).expect("read an input");
            count += 1;
            if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "inputs that fail their target's checks: {failed:#?}");
    count
}

#[test]
fn the_corpus_passes() {
    let count = replay("corpus");
    assert!(count >= TARGETS.len(), "every target has a seed corpus ({count} files)");
    for (target, _) in TARGETS {
        assert!(!inputs("corpus", target).is_empty(), "fuzz/corpus/{target}/ is empty");
    }
}

#[test]
fn the_regressions_pass() {
    replay("regressions");
}

#[test]
fn every_target_has_a_fuzz_target_and_nothing_else_does() {
    let mut files: Vec<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets/")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = TARGETS.iter().map(|(name, _)| format!("{name}.rs")).collect();
    expected.sort();
    assert_eq!(files, expected);
    for kind in ["corpus", "regressions"] {
        for dir in fs::read_dir(fuzz_dir().join(kind)).into_iter().flatten() {
            let name = dir.unwrap().file_name().to_string_lossy().into_owned();
            assert!(TARGETS.iter().any(|(t, _)| *t == name), "fuzz/{kind}/{name} is no target");
        }
    }
}

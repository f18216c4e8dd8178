//! The core's layers (crates/mfa-core/src/lib.rs lists them): a module uses only
//! the layers below its own, so that a store or a provider can be added, or
//! replaced, without reaching into what is built on it. Unit tests and the fuzz
//! bodies may use anything.

use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first; modules on one line are one layer.
const LAYERS: &[&[&str]] = &[
    &["clock", "text", "guard", "fast_map", "sealing"],
    &["identity", "factor", "stats"],
    &["config"],
    &["store"],
    &["challenge"],
    &["channel"],
    &["backend"],
    &["engine"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a file up to its unit tests.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/mfa-core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let top =
            relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        let name = relative.to_string_lossy();
        if name.ends_with("tests.rs") || name.contains("test_config") || name.contains("testutil") {
            continue;
        }
        let Some(own) = layer_of(&top) else { continue };
        for (at, _) in code(&file).match_indices("crate::") {
            let used: String =
                code(&file)[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if let Some(layer) = layer_of(&used) {
                if layer > own {
                    wrong.push(format!("{name} ({top}) uses crate::{used}"));
                }
            }
        }
    }
    wrong.dedup();
    assert!(wrong.is_empty(), "lower layers using upper ones:\n{}", wrong.join("\n"));
}

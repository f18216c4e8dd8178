//! The Python venvs of the tests' PyPI packages, each made by scripts/NAME.sh
//! (scripts/python-venv.sh) into .deps/NAME-venv, or where `RLM_MFA_NAME_VENV` says.

use std::path::PathBuf;

/// The venv's python, or None (and a note) when it is not there and the test is
/// to be skipped; with `RLM_MFA_REQUIRE_NAME=1` (scripts/test.sh) a missing venv
/// fails the test instead. `what` names the venv's contents in the messages.
pub fn python(name: &str, what: &str) -> Option<PathBuf> {
    let upper = name.to_uppercase();
    let venv = std::env::var_os(format!("RLM_MFA_{upper}_VENV"))
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo().join(format!(".deps/{name}-venv")));
    let python = venv.join("bin/python");
    if venv.join(".rlm-mfa-installed").is_file() && python.is_file() {
        return Some(python);
    }
    if std::env::var(format!("RLM_MFA_REQUIRE_{upper}")).as_deref() == Ok("1") {
        panic!("no {what} venv in {}: run scripts/{name}.sh", venv.display());
    }
    eprintln!("note: no {what} venv in {}; test skipped (run scripts/{name}.sh)", venv.display());
    None
}

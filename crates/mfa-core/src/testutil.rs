//! Helpers shared by the unit tests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rlm_mfa-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` with `text` and the given permission bits.
    pub fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where tests point the system's trust store to have none: nowhere.
pub const NO_TRUST_STORE: &str = "/nonexistent/rlm_mfa-ca.pem";

/// Runs the ignored test `test` (its full path) in a process of its own whose
/// environment leaves the system's trust store unloadable (it is found through the
/// environment, which other tests running at the same time must not see changed),
/// and checks that it passed.
pub fn run_without_trust_store(test: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--test-threads=1"])
        .env("SSL_CERT_FILE", NO_TRUST_STORE)
        .env("SSL_CERT_DIR", "/nonexistent")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("1 passed"), "{text}{}", String::from_utf8_lossy(&out.stderr));
}

/// Whether this process was started by [`run_without_trust_store`].
pub fn without_trust_store() -> bool {
    std::env::var("SSL_CERT_FILE").as_deref() == Ok(NO_TRUST_STORE)
}

//! A value loaded from a file and loaded again when the file changes, keeping
//! the last good copy when the new one cannot be used.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What identifies one version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        ctime: m.ctime(),
        ctime_nsec: m.ctime_nsec(),
    })
}

/// What happened when a request looked at the file.
pub enum ReloadEvent {
    Reloaded,
    /// The new version was refused; the last good copy stays. Reported once per version.
    Refused(String),
}

pub struct Reloading<T> {
    path: PathBuf,
    load: fn(&Path) -> Result<T, String>,
    current: RwLock<Arc<T>>,
    /// The version last tried, good or not; a failed version is not retried until it changes.
    seen: Mutex<Option<Stamp>>,
    /// The file is looked at no more often than this, so that a busy server does not
    /// stat it on every request.
    interval: Duration,
    /// When it was last looked at, in milliseconds since `started`.
    last_check: AtomicU64,
    started: Instant,
}

/// How often the token file and the user map are checked for changes.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl<T> Reloading<T> {
    /// Loads the file now; a failure here is a start-up error. Changes are looked
    /// for at most once per `interval`.
    pub fn open(path: &Path, load: fn(&Path) -> Result<T, String>, interval: Duration) -> Result<Self, String> {
        let seen = stamp(path);
        let value = load(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            load,
            current: RwLock::new(Arc::new(value)),
            seen: Mutex::new(seen),
            interval,
            last_check: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Whether the interval since the last look has passed (and claims this look).
    fn due(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_check.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.interval.as_millis() as u64 && last != 0 {
            return false;
        }
        // One request wins the look; the others go on with the current copy.
        self.last_check.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// The current value, after loading the file again if it changed. One stat per call;
    /// requests arriving during a reload keep using the previous copy.
    pub fn get(&self) -> (Arc<T>, Option<ReloadEvent>) {
        let event = self.check();
        let value = match self.current.read() {
            Ok(v) => Arc::clone(&v),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        (value, event)
    }

    fn check(&self) -> Option<ReloadEvent> {
        if !self.due() {
            return None;
        }
        let now = stamp(&self.path);
        // try_lock: one request reloads, the others go on with the last good copy.
        let mut seen = self.seen.try_lock().ok()?;
        if *seen == now {
            return None;
        }
        *seen = now;
        if now.is_none() {
            return Some(ReloadEvent::Refused(format!("{} has disappeared or cannot be read", self.path.display())));
        }
        match (self.load)(&self.path) {
            Ok(value) => {
                let mut current = match self.current.write() {
                    Ok(c) => c,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = Arc::new(value);
                Some(ReloadEvent::Reloaded)
            }
            Err(e) => Some(ReloadEvent::Refused(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value in use now, without looking at the file.
    pub fn current(&self) -> Arc<T> {
        match self.current.read() {
            Ok(v) => Arc::clone(&v),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn temp_file(dir: &TempDir, name: &str, text: &str) -> PathBuf {
        dir.file(name, text, 0o600)
    }

    fn parse_number(path: &Path) -> Result<u32, String> {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        text.trim().parse().map_err(|_| format!("{} is not a number", path.display()))
    }

    #[test]
    fn picks_up_changes_and_keeps_last_good_copy() {
        let dir = TempDir::new("reload");
        let path = temp_file(&dir, "n", "1");
        let r = Reloading::open(&path, parse_number, Duration::ZERO).unwrap();
        assert_eq!(*r.get().0, 1);
        assert!(r.get().1.is_none());

        fs::write(&path, "22").unwrap();
        let (v, ev) = r.get();
        assert_eq!(*v, 22);
        assert!(matches!(ev, Some(ReloadEvent::Reloaded)));

        fs::write(&path, "garbage!").unwrap();
        let (v, ev) = r.get();
        assert_eq!(*v, 22);
        assert!(matches!(ev, Some(ReloadEvent::Refused(_))));
        // Reported once per version.
        assert!(r.get().1.is_none());

        fs::remove_file(&path).unwrap();
        assert_eq!(*r.get().0, 22);
        fs::write(&path, "333").unwrap();
        assert_eq!(*r.get().0, 333);
    }

    #[test]
    fn changes_wait_for_the_interval() {
        let dir = TempDir::new("reload");
        let path = temp_file(&dir, "n", "1");
        let r = Reloading::open(&path, parse_number, Duration::from_secs(3600)).unwrap();
        assert_eq!(*r.get().0, 1);
        fs::write(&path, "2").unwrap();
        assert_eq!(*r.get().0, 1, "not looked at again within the interval");
    }

    #[test]
    fn start_up_failure_is_an_error() {
        let dir = TempDir::new("reload");
        let path = temp_file(&dir, "n", "nope");
        assert!(Reloading::open(&path, parse_number, Duration::ZERO).is_err());
    }
}

//! Writes the counters to a file every `interval`, from one background thread of
//! the module instance, and once more when the instance stops.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{render, Counters};
use crate::clock::Clock;

/// Writes `text` to `path` atomically: a temporary file in the same directory, then
/// a rename, so the collector never reads half a file. Readable by all (0644): the
/// counters are no secret, and node_exporter runs as another user.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    // The collector reads only *.prom: the temporary name does not end so.
    let temporary = dir.join(format!(".{}.{}.{:?}.tmp", name.to_string_lossy(), std::process::id(), thread_tag()));
    let result = (|| {
        let mut file = open_new(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.flush()?;
        drop(file);
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

fn thread_tag() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish()
}

#[cfg(unix)]
fn open_new(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(path)?;
    // The process's umask (027 under some service managers) takes bits from the
    // mode given at creation: set them again, or node_exporter cannot read the file.
    file.set_permissions(fs::Permissions::from_mode(0o644))?;
    Ok(file)
}

#[cfg(not(unix))]
fn open_new(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}

/// Where a line about a failed write goes (the server's log).
pub type Report = Arc<dyn Fn(&str) + Send + Sync>;

struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The background writer of one module instance. Dropping it stops the thread,
/// which writes the file once more.
pub struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Job {
    module: String,
    path: PathBuf,
    counters: &'static Counters,
    clock: Arc<dyn Clock>,
    report: Report,
    /// The kind of the last failure reported: one line per kind, not one per interval.
    failing: Option<io::ErrorKind>,
}

impl Job {
    fn write(&mut self) {
        let text = render(&self.module, &self.counters.snapshot(), self.clock.now());
        match write_atomically(&self.path, &text) {
            Ok(()) => {
                if self.failing.take().is_some() {
                    (self.report)(&format!("stats.file {} is written again", self.path.display()));
                }
            }
            Err(e) if self.failing != Some(e.kind()) => {
                self.failing = Some(e.kind());
                (self.report)(&format!(
                    "cannot write stats.file {} ({e}); counting goes on, this is said once",
                    self.path.display()
                ));
            }
            Err(_) => {}
        }
    }
}

impl Writer {
    /// Writes the file once (an error is returned: the server then refuses to
    /// start), then starts the thread that writes it every `interval`.
    pub fn start(
        module: &str,
        path: &Path,
        interval: Duration,
        counters: &'static Counters,
        clock: Arc<dyn Clock>,
        report: Report,
    ) -> io::Result<Writer> {
        let mut job =
            Job { module: module.to_string(), path: path.to_path_buf(), counters, clock, report, failing: None };
        let text = render(&job.module, &job.counters.snapshot(), job.clock.now());
        write_atomically(&job.path, &text)?;
        let shared = Arc::new(Shared { stop: Mutex::new(false), wake: Condvar::new() });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new().name("rlm_mfa stats".into()).spawn(move || {
            let mut stop = theirs.stop.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                // A stop asked before this thread first waits is not waited for.
                if !*stop {
                    stop = theirs.wake.wait_timeout(stop, interval).unwrap_or_else(|p| p.into_inner()).0;
                }
                let stopping = *stop;
                drop(stop);
                job.write();
                if stopping {
                    return;
                }
                stop = theirs.stop.lock().unwrap_or_else(|p| p.into_inner());
            }
        })?;
        Ok(Writer { shared, thread: Some(thread) })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::stats::Tally;

    fn silent() -> Report {
        Arc::new(|_| {})
    }

    #[test]
    fn the_file_is_replaced_whole_and_readable_by_all() {
        let dir = crate::testutil::TempDir::new("stats");
        let path = dir.path().join("mfa.prom");
        write_atomically(&path, "one\n").unwrap();
        write_atomically(&path, "two\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("mfa.prom")], "no temporary file is left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }

    /// Under umask 027 the file is still readable by all. The umask is the whole
    /// process's: this test runs itself again in a child process started under it,
    /// so the other tests' umask is left alone.
    #[cfg(unix)]
    #[test]
    fn the_file_is_readable_by_all_under_a_restrictive_umask() {
        use std::os::unix::fs::PermissionsExt;
        const CHILD: &str = "MFA_STATS_UMASK_CHILD";
        if let Some(dir) = std::env::var_os(CHILD) {
            let path = Path::new(&dir).join("mfa.prom");
            write_atomically(&path, "one\n").unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(format!("{mode:o}"), "644");
            return;
        }
        let dir = crate::testutil::TempDir::new("stats-umask");
        let name = "stats::writer::tests::the_file_is_readable_by_all_under_a_restrictive_umask";
        let out = std::process::Command::new("sh")
            .args(["-c", "umask 027 && exec \"$0\" \"$@\""])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1"])
            .env(CHILD, dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("1 passed"), "the child ran the test: {stdout}");
    }

    #[test]
    fn start_fails_on_a_file_that_cannot_be_written() {
        let dir = crate::testutil::TempDir::new("stats");
        let path = dir.path().join("missing").join("mfa.prom");
        let clock = Arc::new(FixedClock::new(5));
        let counters = Box::leak(Box::default());
        assert!(Writer::start("mfa", &path, Duration::from_secs(60), counters, clock, silent()).is_err());
    }

    #[test]
    fn stopping_writes_the_counts_once_more() {
        let dir = crate::testutil::TempDir::new("stats");
        let path = dir.path().join("mfa.prom");
        let counters: &'static Counters = Box::leak(Box::default());
        let clock = Arc::new(FixedClock::new(7));
        let writer = Writer::start("mfa", &path, Duration::from_secs(3600), counters, clock, silent()).unwrap();
        assert!(fs::read_to_string(&path).unwrap().contains("rlm_mfa_accepts_total{module=\"mfa\"} 0\n"));
        counters.count(Tally::Accept);
        drop(writer);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("rlm_mfa_accepts_total{module=\"mfa\"} 1\n"), "{text}");
        assert!(text.contains("rlm_mfa_stats_written_timestamp_seconds{module=\"mfa\"} 7\n"), "{text}");
    }

    #[test]
    fn a_failing_write_is_reported_once_per_kind() {
        let dir = crate::testutil::TempDir::new("stats");
        let path = dir.path().join("sub").join("mfa.prom");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let mut job = Job {
            module: "mfa".into(),
            path: path.clone(),
            counters: Box::leak(Box::default()),
            clock: Arc::new(FixedClock::new(1)),
            report: Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string())),
            failing: None,
        };
        job.write();
        job.write();
        job.write();
        assert_eq!(lines.lock().unwrap().len(), 1);
        fs::create_dir(dir.path().join("sub")).unwrap();
        job.write();
        assert_eq!(lines.lock().unwrap().len(), 2, "{:?}", lines.lock().unwrap());
        assert!(path.exists());
    }
}

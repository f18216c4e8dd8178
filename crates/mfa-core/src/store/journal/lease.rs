//! The lease: while no other process touches the journal, the module keeps its
//! file lock between writes, so that a claim is one `write()` and no other
//! system call (no `flock` pair, no `fstat` to catch up: nobody else can append).
//!
//! A thread of the module watches the journal and its directory (inotify) and lets
//! go of the lock, under the journal's mutex, as soon as anyone opens the journal
//! (mfa-admin, a second server, an editor, `truncate`), deletes it, or renames
//! something over or away from it. Opens are watched on the file itself, not as
//! the directory's children: a directory that watches its children's opens makes
//! every write to any of them look that watch up (about a tenth of what the
//! journal's `write` costs the kernel). Every writer that finds the lock held opens
//! the file before trying again (`lock_file`'s knock), so a writer that opened
//! it earlier (a second server sharing the file) is let in too. After
//! [`QUIET`] without such an event, the thread takes the lock again if it is
//! free, and catches up once under it. The file lock alone decides who may
//! append, as before: the lease changes only how long the module holds it.
//! Without inotify (or when the watch is lost) the module takes the lock per
//! write, as before.

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use super::shared::Inner;
use crate::store::atomic::parent_dir;

/// How long after the last open, deletion or rename of the journal by anyone the
/// module waits before it takes the lock on lease again.
pub(super) const QUIET: Duration = Duration::from_secs(1);

/// The watching thread, started by the first write (after FreeRADIUS forked, if
/// it does: a thread does not survive a fork).
pub(super) struct Lease {
    watch: Arc<Watch>,
    thread: JoinHandle<()>,
}

struct Watch {
    fd: OwnedFd,
    wd: i32,
    stop: AtomicBool,
}

impl Lease {
    /// Watches the journal's directory and starts the thread; None when inotify
    /// is not available (then writes take the lock each time).
    pub(super) fn start(inner: &Arc<Inner>) -> Option<Lease> {
        let path = inner.path();
        let name = path.file_name()?.to_owned();
        let fd = inotify::init(CreateFlags::CLOEXEC).ok()?;
        let events = WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;
        let wd = inotify::add_watch(&fd, parent_dir(path), events).ok()?;
        let watch = Arc::new(Watch { fd, wd, stop: AtomicBool::new(false) });
        let (held, ours) = (Arc::clone(inner), Arc::clone(&watch));
        let thread = thread::Builder::new().name("mfa-lease".into()).spawn(move || run(&held, &ours, &name)).ok()?;
        Some(Lease { watch, thread })
    }

    /// Stops the thread (it lets go of the lease) and waits for it.
    pub(super) fn stop(self) {
        self.watch.stop.store(true, Ordering::SeqCst);
        // Removing the watch queues IN_IGNORED, which wakes the thread; when it
        // cannot be removed it is gone already, and IN_IGNORED was queued then.
        let _ = inotify::remove_watch(&self.watch.fd, self.watch.wd);
        let _ = self.thread.join();
    }
}

/// What the events read say.
enum Seen {
    Nothing,
    /// The journal was opened, replaced or deleted: let go.
    Journal,
    /// The watch is gone (stopped, or the directory went away): let go for good.
    End,
}

fn run(inner: &Inner, watch: &Watch, name: &OsStr) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    // The watch on the journal file's opens, on the file at the path when it was added.
    let mut file_wd: Option<i32> = None;
    // None: try to take the lease now.
    let mut quiet_until: Option<Instant> = None;
    loop {
        if watch.stop.load(Ordering::SeqCst) {
            break;
        }
        let leased = inner.lock().leased;
        let wait = if leased {
            None
        } else {
            let now = Instant::now();
            match quiet_until {
                Some(until) if until > now => Some(until - now),
                _ => {
                    // Before the lease: try_lease refuses a file that is no longer the one
                    // at the path, and a later replacement shows in the directory's events.
                    if !watch_file(watch, inner.path(), &mut file_wd) {
                        quiet_until = Some(now + QUIET);
                        continue;
                    }
                    let taken = {
                        let mut journal = inner.lock();
                        let taken = journal.try_lease();
                        // Catching up may have repaired damage, kept for the log.
                        inner.note_upkeep(&journal);
                        taken
                    };
                    if !matches!(taken, Ok(true)) {
                        // Held by someone else, or an error the next write reports.
                        quiet_until = Some(now + QUIET);
                    }
                    continue;
                }
            }
        };
        let timeout = wait.and_then(|w| Timespec::try_from(w).ok());
        let mut fds = [PollFd::new(&watch.fd, PollFlags::IN)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        match read_events(watch, &mut buf, name) {
            Seen::Nothing => {}
            Seen::Journal => {
                inner.lock().end_lease();
                quiet_until = Some(Instant::now() + QUIET);
            }
            Seen::End => break,
        }
    }
    inner.lock().end_lease();
}

/// Watches the opens of the file now at `path` (the same watch when it is the same
/// file); false when it cannot be watched, and then no lease is taken.
fn watch_file(watch: &Watch, path: &std::path::Path, file_wd: &mut Option<i32>) -> bool {
    let Ok(wd) = inotify::add_watch(&watch.fd, path, WatchFlags::OPEN) else { return false };
    if let Some(old) = file_wd.replace(wd).filter(|&old| old != wd) {
        // A file replaced since: its watch is of no use (IN_IGNORED follows, and is skipped).
        let _ = inotify::remove_watch(&watch.fd, old);
    }
    true
}

/// Reads what is queued (one `read`) and sorts it.
fn read_events(watch: &Watch, buf: &mut [MaybeUninit<u8>], name: &OsStr) -> Seen {
    let mut reader = inotify::Reader::new(&watch.fd, buf);
    let mut seen = Seen::Nothing;
    loop {
        let event = match reader.next() {
            Ok(event) => event,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return Seen::End,
        };
        let (flags, of_directory) = (event.events(), event.wd() == watch.wd);
        if flags.contains(ReadFlags::UNMOUNT) || (of_directory && flags.contains(ReadFlags::IGNORED)) {
            return Seen::End;
        }
        let opened = !of_directory && flags.contains(ReadFlags::OPEN);
        let ours = of_directory && event.file_name().is_some_and(|n| OsStr::from_bytes(n.to_bytes()) == name);
        let directory_gone = of_directory && flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF);
        if opened || ours || directory_gone || flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            seen = Seen::Journal;
        }
        if reader.is_buffer_empty() {
            return seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::time::{Duration, Instant};

    use super::super::fixtures::{claim_next_counters, new_dir, open, totp};
    use super::super::lock::try_lock_file;
    use super::super::{JournalOptions, SharedJournal};

    /// Waits for what the lease's thread does on its own (bounded: a failure, not a hang).
    fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "never {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_module_holds_the_lock_between_writes_and_lets_another_writer_in() {
        let dir = new_dir();
        let path = dir.journal_path();
        let journal = SharedJournal::open(&path, JournalOptions::default()).unwrap();
        // Opened before the lease, as a second server would have: no knock in opening.
        let early = OpenOptions::new().read(true).append(true).open(&path).unwrap();
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 1)).unwrap());
        until("leased", || journal.lock().leased);
        assert!(!try_lock_file(&early).unwrap(), "the lock is held between writes");

        // mfa-admin: opening the file ends the lease; its claim sees the module's.
        let mut admin = open(&path);
        assert!(!admin.claim_totp_step("alice", "T1", 1).unwrap());
        assert!(admin.claim_totp_step("alice", "T1", 2).unwrap());
        // The module catches up with it.
        assert!(!journal.write(|j| j.claim_totp_step("alice", "T1", 2)).unwrap());
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 3)).unwrap());

        // Leased again once quiet; a writer that opened the file long before knocks.
        until("leased again", || journal.lock().leased);
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 4)).unwrap());
        assert!(!admin.claim_totp_step("alice", "T1", 4).unwrap(), "caught up under the lock");
        assert!(admin.claim_totp_step("alice", "T1", 5).unwrap());
        assert!(!journal.write(|j| j.claim_totp_step("alice", "T1", 5)).unwrap());
        assert_eq!(open(&path).token("alice", "T1"), totp(5));
    }

    /// Two servers sharing one journal, each taking the lease when it can: every
    /// counter value is claimed by exactly one of them, as without the lease.
    #[test]
    fn two_holders_of_one_journal_never_claim_one_counter_twice() {
        let dir = new_dir();
        let path = dir.journal_path();
        let (a, b) = (
            SharedJournal::open(&path, JournalOptions::default()).unwrap(),
            SharedJournal::open(&path, JournalOptions::default()).unwrap(),
        );
        let won: u64 = std::thread::scope(|scope| {
            let workers: Vec<_> = [&a, &b, &a, &b]
                .into_iter()
                .map(|journal| scope.spawn(move || claim_next_counters(journal, 200)))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert!(won > 0);
        drop((a, b));
        assert_eq!(open(&path).token("alice", "H1").next_counter, won);
    }

    #[test]
    fn a_journal_deleted_under_the_lease_is_written_back() {
        let dir = new_dir();
        let path = dir.journal_path();
        let journal = SharedJournal::open(&path, JournalOptions::default()).unwrap();
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 5)).unwrap());
        until("leased", || journal.lock().leased);
        fs::remove_file(&path).unwrap();
        until("the lease ended", || !journal.lock().leased);
        assert!(journal.write(|j| j.claim_hotp_counter("alice", "H1", 2)).unwrap());
        let again = open(&path);
        assert_eq!(again.token("alice", "T1"), totp(5));
        assert_eq!(again.token("alice", "H1").next_counter, 2);
    }

    /// Opens are watched on the file itself: after the journal is replaced (another
    /// server's compaction renames its new file over it), the lease ends, and once
    /// taken again an open of the new file ends it as well.
    #[test]
    fn the_watch_on_opens_follows_the_journal_when_it_is_replaced() {
        let dir = new_dir();
        let path = dir.journal_path();
        let journal = SharedJournal::open(&path, JournalOptions::default()).unwrap();
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 1)).unwrap());
        until("leased", || journal.lock().leased);
        let new = path.with_extension("new");
        fs::write(&new, "{\"k\":\"totp\",\"u\":\"alice\",\"s\":\"T1\",\"v\":7}\n").unwrap();
        fs::rename(&new, &path).unwrap();
        until("the lease ended", || !journal.lock().leased);
        assert!(!journal.write(|j| j.claim_totp_step("alice", "T1", 7)).unwrap(), "the new file is read");
        until("leased again", || journal.lock().leased);
        let other = OpenOptions::new().read(true).append(true).open(&path).unwrap();
        until("the lease ended on an open of the new file", || !journal.lock().leased);
        assert!(try_lock_file(&other).unwrap());
    }

    #[test]
    fn dropping_the_journal_stops_the_thread_and_lets_go_of_the_lock() {
        let dir = new_dir();
        let path = dir.journal_path();
        let journal = SharedJournal::open(&path, JournalOptions::default()).unwrap();
        let other = OpenOptions::new().read(true).append(true).open(&path).unwrap();
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 1)).unwrap());
        until("leased", || journal.lock().leased);
        drop(journal);
        assert!(try_lock_file(&other).unwrap());
    }
}

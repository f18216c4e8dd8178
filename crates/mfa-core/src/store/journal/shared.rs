//! The journal as the module holds it, shared by its threads: with `fsync = yes`
//! concurrent writes share one fdatasync (group commit), and compaction runs on
//! a thread of its own instead of in the write that crossed `compact_after`.
//!
//! Group commit: a write appends its records under the journal's mutex and the
//! file lock as before and takes a ticket (the number of writes so far). It then
//! waits, without the mutex, until a sync that started after its write has
//! finished. Whoever finds no sync running starts one for every ticket handed
//! out so far; the others wait for it. So a reply still leaves only after its own
//! record is on disk, and a disk flush serves every write made while the
//! previous one ran.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::compactor::Compactor;
use super::error::{io_error, JournalError};
use super::lease::Lease;
use super::lock::unlock_file;
use super::{JournalOptions, StateJournal};

/// How the group commit syncs the journal file (a test counts and delays syncs).
type Syncer = Box<dyn Fn(&File) -> io::Result<()> + Send + Sync>;

/// A [`StateJournal`] shared by threads. Dropping it waits for a compaction
/// under way, so that no thread outlives the module.
pub struct SharedJournal {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    path: PathBuf,
    journal: Mutex<StateJournal>,
    /// None with `fsync = no`: every write is done when its write() is.
    commit: Option<GroupCommit>,
    /// The compaction thread (`compactor.rs`), started by the first compaction due.
    compactor: Mutex<Option<Compactor>>,
    /// The thread that holds the file lock on lease (`lease.rs`), started by the first write.
    lease: Mutex<Option<Lease>>,
    lease_started: AtomicBool,
    /// The journal holds an upkeep error for the log (`take_compaction_error`): set
    /// where one may have been kept, so that a login looks without taking the mutex.
    upkeep: AtomicBool,
    /// Held by a test to keep the compaction thread from starting.
    #[cfg(test)]
    gate: Mutex<()>,
}

struct GroupCommit {
    state: Mutex<CommitState>,
    synced: Condvar,
    sync: Syncer,
}

struct CommitState {
    /// Tickets handed out: writes made, in the order they were made.
    written: u64,
    /// Every ticket up to this one is on disk.
    synced: u64,
    /// A sync is running (its caller syncs for everyone).
    syncing: bool,
    /// The journal file the writes went to (a duplicate descriptor, so that a
    /// sync needs no journal mutex), and its (device, inode).
    file: Arc<File>,
    file_id: (u64, u64),
    /// Tickets whose sync failed, (after, up to], and why: they fail, even when
    /// a later sync succeeds (after a failed fdatasync the kernel may have
    /// dropped the pages it could not write).
    failed: Vec<(u64, u64, io::ErrorKind, String)>,
}

/// Failed syncs remembered for the writes waiting on them; old ones have been seen.
const FAILED_KEPT: usize = 16;

impl SharedJournal {
    /// Opens (or creates) the journal at `path` and loads it.
    pub fn open(path: &std::path::Path, opts: JournalOptions) -> Result<SharedJournal, JournalError> {
        Self::open_with(path, opts, Box::new(File::sync_data))
    }

    fn open_with(path: &std::path::Path, opts: JournalOptions, sync: Syncer) -> Result<SharedJournal, JournalError> {
        let mut journal = StateJournal::open(path, opts)?;
        journal.shared = true;
        let commit = if opts.fsync {
            let file = journal.file.try_clone().map_err(io_error("open", path))?;
            let state = CommitState {
                written: 0,
                synced: 0,
                syncing: false,
                file: Arc::new(file),
                file_id: journal.file_id,
                failed: Vec::new(),
            };
            Some(GroupCommit { state: Mutex::new(state), synced: Condvar::new(), sync })
        } else {
            None
        };
        let inner = Inner {
            path: path.to_path_buf(),
            journal: Mutex::new(journal),
            commit,
            compactor: Mutex::default(),
            lease: Mutex::default(),
            lease_started: AtomicBool::new(false),
            upkeep: AtomicBool::new(false),
            #[cfg(test)]
            gate: Mutex::default(),
        };
        Ok(SharedJournal { inner: Arc::new(inner) })
    }

    /// The journal, for reading (what `write` does not cover is not synced).
    pub fn lock(&self) -> MutexGuard<'_, StateJournal> {
        self.inner.lock()
    }

    /// Runs `change` on the journal and returns once what it appended is on
    /// disk (with `fsync = yes`; written, without). Starts a compaction on its
    /// own thread when enough records piled up.
    pub fn write<T>(
        &self,
        change: impl FnOnce(&mut StateJournal) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let (due, result, ticket) = {
            let mut journal = self.inner.lock();
            let result = change(&mut journal);
            let appended = std::mem::take(&mut journal.appended);
            let ticket = self.inner.tickets(&journal, appended);
            self.inner.note_upkeep(&journal);
            // As inline: a change that failed starts none (a journal that cannot
            // be written stays the error it is, see tests/journal_damage.rs).
            (result.is_ok() && appended > 0 && journal.compaction_due(), result, ticket)
        };
        let synced = match ticket {
            Ok(Some(ticket)) => self.inner.wait_synced(ticket),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if due {
            self.start_compaction();
        }
        if !self.inner.lease_started.load(Ordering::Relaxed) {
            self.start_lease();
        }
        let value = result?;
        synced.map(|()| value)
    }

    /// The upkeep error kept for the log, if any (see `StateJournal::take_compaction_error`);
    /// no lock taken when there is none.
    pub fn take_upkeep_error(&self) -> Option<JournalError> {
        if !self.inner.upkeep.load(Ordering::Acquire) {
            return None;
        }
        let mut journal = self.inner.lock();
        let taken = journal.take_compaction_error();
        self.inner.note_upkeep(&journal);
        taken
    }

    /// Takes the file lock for each write only, never on lease (a brief user: mfa-admin).
    pub fn never_lease(&self) {
        self.inner.lease_started.store(true, Ordering::SeqCst);
    }

    /// Starts the lease's thread, once (from a request, so after a fork).
    fn start_lease(&self) {
        if self.inner.lease_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let lease = Lease::start(&self.inner);
        *self.inner.lease.lock().unwrap_or_else(|p| p.into_inner()) = lease;
    }

    /// Lets go of the lease and stops its thread (tests; the end of the module).
    fn stop_lease(&self) {
        let lease = self.inner.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(lease) = lease {
            lease.stop();
        }
    }

    /// Asks the compaction thread for a compaction unless one is running; starts
    /// the thread the first time.
    fn start_compaction(&self) {
        let mut slot = self.inner.compactor.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            match Compactor::start(&self.inner) {
                Ok(started) => *slot = Some(started),
                Err(e) => {
                    // No thread to spare: said in the log; tried again after
                    // compact_after more records.
                    drop(slot);
                    let mut journal = self.inner.lock();
                    journal.compaction_error = Some(io_error("start a compaction of", &self.inner.path)(e));
                    journal.since_compaction = 0;
                    self.inner.note_upkeep(&journal);
                    return;
                }
            }
        }
        if let Some(compactor) = slot.as_ref() {
            compactor.request();
        }
    }

    /// Waits for a compaction asked for or under way (tests).
    pub fn finish_compaction(&self) {
        if let Some(compactor) = self.inner.compactor.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            compactor.wait_idle();
        }
    }

    /// Stops the compaction thread, after a compaction under way.
    fn stop_compactor(&self) {
        let compactor = self.inner.compactor.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(compactor) = compactor {
            compactor.stop();
        }
    }
}

impl Drop for SharedJournal {
    fn drop(&mut self) {
        self.stop_compactor();
        self.stop_lease();
    }
}

impl Inner {
    pub(super) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Under the journal mutex: records whether an upkeep error waits for the log.
    pub(super) fn note_upkeep(&self, journal: &StateJournal) {
        self.upkeep.store(journal.compaction_error.is_some(), Ordering::Release);
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, StateJournal> {
        // A panic while holding the lock leaves the journal consistent (each record
        // is one write), so a poisoned lock is still usable.
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Under the journal mutex, after a change: a ticket for what it appended,
    /// if anything waits for a sync. When the journal is now another file (a
    /// compaction, ours or another process's), the writes still waiting are in
    /// the old one: it is synced first, then syncs go to the new one.
    fn tickets(&self, journal: &StateJournal, appended: u64) -> Result<Option<u64>, JournalError> {
        let Some(commit) = &self.commit else { return Ok(None) };
        let (file_id, old, waiting) = {
            let state = commit.lock();
            (state.file_id, Arc::clone(&state.file), state.written > state.synced)
        };
        if file_id != journal.file_id {
            let synced = if waiting { (commit.sync)(&old) } else { Ok(()) };
            // Our duplicate must not keep the old file's lock alive for others.
            let _ = unlock_file(&old);
            let file = journal.file.try_clone().map_err(io_error("open", &self.path))?;
            let mut state = commit.lock();
            if let Err(e) = synced {
                let (after, upto) = (state.synced, state.written);
                state.fail(after, upto, &e);
            }
            state.file = Arc::new(file);
            state.file_id = journal.file_id;
        }
        if appended == 0 {
            return Ok(None);
        }
        let mut state = commit.lock();
        state.written += 1;
        Ok(Some(state.written))
    }

    /// Returns once a sync that started after ticket `ticket` was handed out has
    /// succeeded; runs that sync itself when none is running.
    fn wait_synced(&self, ticket: u64) -> Result<(), JournalError> {
        let Some(commit) = &self.commit else { return Ok(()) };
        let mut state = commit.lock();
        loop {
            if let Some((_, _, kind, why)) =
                state.failed.iter().find(|(after, upto, ..)| *after < ticket && ticket <= *upto)
            {
                return Err(io_error("sync", &self.path)(io::Error::new(*kind, why.clone())));
            }
            if state.synced >= ticket {
                return Ok(());
            }
            if state.syncing {
                state = commit.synced.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Every ticket so far was written before this sync starts.
            state.syncing = true;
            let (upto, file) = (state.written, Arc::clone(&state.file));
            drop(state);
            let synced = (commit.sync)(&file);
            state = commit.lock();
            state.syncing = false;
            match synced {
                Ok(()) => state.synced = state.synced.max(upto),
                Err(e) => {
                    let after = state.synced;
                    state.fail(after, upto, &e);
                }
            }
            commit.synced.notify_all();
        }
    }

    /// A compaction, on the compaction thread: the rewrite itself holds neither
    /// the journal mutex nor the file lock (see `compact.rs`). A failure is kept
    /// for the log and not retried until `compact_after` more records piled up.
    pub(super) fn compact(&self) {
        #[cfg(test)]
        drop(self.gate.lock());
        let snapshot = {
            let mut journal = self.lock();
            let snapshot = journal.begin_compaction();
            self.tickets(&journal, 0).map(|_| snapshot)
        };
        let result = snapshot.and_then(|s| s).and_then(|s| s.write(&self.path)).and_then(|written| {
            let mut journal = self.lock();
            let finished = journal.finish_compaction(written);
            self.tickets(&journal, 0).and(finished)
        });
        let mut journal = self.lock();
        if let Err(e) = result {
            journal.since_compaction = 0;
            journal.compaction_error = Some(e);
        }
        self.note_upkeep(&journal);
    }
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, CommitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CommitState {
    fn fail(&mut self, after: u64, upto: u64, e: &io::Error) {
        if self.failed.len() >= FAILED_KEPT {
            self.failed.remove(0);
        }
        self.failed.push((after, upto, e.kind(), e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::super::fixtures::{claim_next_counters, new_dir, open, totp};
    use super::super::{JournalOptions, StateJournal};
    use super::SharedJournal;

    const FSYNC: JournalOptions = JournalOptions { fsync: true, compact_after: 0 };

    /// What the injected syncer saw: how many syncs, and how much of the file a
    /// finished sync covers (its length when that sync started).
    #[derive(Default)]
    struct Syncs {
        count: AtomicU64,
        durable: AtomicU64,
    }

    fn counting(syncs: &Arc<Syncs>) -> super::Syncer {
        let syncs = Arc::clone(syncs);
        Box::new(move |file: &fs::File| {
            let len = file.metadata()?.len();
            // Long enough for other writers to pile up behind this sync.
            std::thread::sleep(std::time::Duration::from_millis(2));
            file.sync_data()?;
            syncs.count.fetch_add(1, Ordering::SeqCst);
            syncs.durable.fetch_max(len, Ordering::SeqCst);
            Ok(())
        })
    }

    #[test]
    fn concurrent_claims_share_syncs_and_each_returns_after_a_sync_covering_it() {
        let dir = new_dir();
        let path = dir.journal_path();
        let syncs = Arc::new(Syncs::default());
        let journal = SharedJournal::open_with(&path, FSYNC, counting(&syncs)).unwrap();
        let (threads, claims) = (8, 40);
        std::thread::scope(|scope| {
            for t in 0..threads {
                let (journal, path, syncs) = (&journal, &path, &syncs);
                scope.spawn(move || {
                    let user = format!("user{t}");
                    for step in 0..claims {
                        assert!(journal.write(|j| j.claim_totp_step(&user, "T1", step)).unwrap());
                        // Its record lies within what a finished sync covered: that
                        // sync started after the record was written.
                        let durable = syncs.durable.load(Ordering::SeqCst) as usize;
                        let text = fs::read_to_string(path).unwrap();
                        let line = format!("{{\"k\":\"totp\",\"u\":\"{user}\",\"s\":\"T1\",\"v\":{step}}}\n");
                        let end = text.find(&line).expect("written") + line.len();
                        assert!(end <= durable, "{user} step {step} returned before a sync covered it");
                    }
                });
            }
        });
        let (count, total) = (syncs.count.load(Ordering::SeqCst), threads * claims);
        assert!(count < total, "{count} syncs for {total} claims");
        assert_eq!(syncs.durable.load(Ordering::SeqCst), fs::metadata(&path).unwrap().len());
        let again = open(&path);
        for t in 0..threads {
            assert_eq!(again.token(&format!("user{t}"), "T1"), totp(claims - 1));
        }
    }

    #[test]
    fn a_failed_sync_fails_the_writes_it_was_for_and_not_the_next() {
        let dir = new_dir();
        let path = dir.journal_path();
        let fail = Arc::new(AtomicU64::new(1));
        let failing = Arc::clone(&fail);
        let syncer: super::Syncer = Box::new(move |file: &fs::File| {
            if failing.swap(0, Ordering::SeqCst) == 1 {
                return Err(io::Error::other("injected"));
            }
            file.sync_data()
        });
        let journal = SharedJournal::open_with(&path, FSYNC, syncer).unwrap();
        let e = journal.write(|j| j.claim_totp_step("alice", "T1", 1)).unwrap_err().to_string();
        assert!(e.contains("sync") && e.contains("injected"), "{e}");
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 2)).unwrap());
        // Nothing to sync: no sync, no error.
        assert!(!journal.write(|j| j.claim_totp_step("alice", "T1", 2)).unwrap());
    }

    #[test]
    fn syncs_follow_the_file_when_another_process_compacts() {
        let dir = new_dir();
        let path = dir.journal_path();
        let synced = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&synced);
        let syncer: super::Syncer = Box::new(move |file: &fs::File| {
            seen.lock().unwrap().push(file.metadata()?.ino());
            file.sync_data()
        });
        let journal = SharedJournal::open_with(&path, FSYNC, syncer).unwrap();
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 1)).unwrap());
        let mut admin = open(&path);
        admin.compact().unwrap();
        let compacted = fs::metadata(&path).unwrap().ino();
        assert!(journal.write(|j| j.claim_totp_step("alice", "T1", 2)).unwrap());
        assert_eq!(synced.lock().unwrap().last(), Some(&compacted));
        // The old file's lock does not outlive it in our duplicate descriptor.
        admin.set_totp_step("bob", "T1", 1).unwrap();
        assert_eq!(open(&path).token("alice", "T1"), totp(2));
    }

    #[test]
    fn compaction_runs_on_its_own_thread_and_keeps_every_claim() {
        let dir = new_dir();
        let path = dir.journal_path();
        let opts = JournalOptions { fsync: true, compact_after: 30 };
        let journal = SharedJournal::open(&path, opts).unwrap();
        let won: u64 = std::thread::scope(|scope| {
            let module: Vec<_> = (0..3).map(|_| scope.spawn(|| claim_next_counters(&journal, 100))).collect();
            // Another process (mfa-admin, a second server) claiming the same counter.
            let other = scope.spawn(|| {
                let mut j = StateJournal::open(&path, JournalOptions { fsync: false, compact_after: 0 }).unwrap();
                let mut won = 0;
                for _ in 0..100 {
                    j.refresh().unwrap();
                    let next = j.token("alice", "H1").next_counter + 1;
                    won += u64::from(j.claim_hotp_counter("alice", "H1", next).unwrap());
                }
                won
            });
            module.into_iter().chain([other]).map(|w| w.join().unwrap()).sum()
        });
        journal.finish_compaction();
        assert!(journal.lock().take_compaction_error().is_none());
        assert_eq!(open(&path).token("alice", "H1").next_counter, won);
        assert!(fs::read_to_string(&path).unwrap().lines().count() < 100, "compacted");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no copy left behind");
    }

    /// Every compaction runs on one thread, kept for the journal (a thread per
    /// compaction left its memory in another malloc arena each time).
    #[test]
    fn compactions_run_on_one_thread_kept_until_the_journal_is_dropped() {
        let dir = new_dir();
        let path = dir.journal_path();
        let journal = SharedJournal::open(&path, JournalOptions { fsync: false, compact_after: 10 }).unwrap();
        let mut threads = Vec::new();
        for round in 0..3u64 {
            for step in 0..10 {
                journal.write(|j| j.set_totp_step("alice", "T1", round * 10 + step)).unwrap();
            }
            journal.finish_compaction();
            assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1, "compacted in round {round}");
            let slot = journal.inner.compactor.lock().unwrap();
            threads.push(slot.as_ref().expect("the thread is kept").thread_id());
        }
        assert!(threads.iter().all(|t| *t == threads[0]), "one thread: {threads:?}");
        assert!(journal.lock().take_compaction_error().is_none());
        drop(journal);
        assert_eq!(open(&path).token("alice", "T1"), totp(29), "whole after the thread stopped");
    }

    /// The write that crosses compact_after leaves the rewrite to the thread.
    #[test]
    fn the_write_crossing_compact_after_does_not_compact() {
        let dir = new_dir();
        let path = dir.journal_path();
        let opts = JournalOptions { fsync: false, compact_after: 10 };
        let journal = SharedJournal::open(&path, opts).unwrap();
        let held = journal.inner.gate.lock().unwrap();
        for step in 0..10 {
            journal.write(|j| j.set_totp_step("alice", "T1", step)).unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 10, "not compacted in the write");
        // Writes go on while the thread waits (or runs).
        journal.write(|j| j.set_totp_step("alice", "T1", 10)).unwrap();
        drop(held);
        journal.finish_compaction();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"k\":\"totp\",\"u\":\"alice\",\"s\":\"T1\",\"v\":10}\n");
        assert!(journal.lock().take_compaction_error().is_none());
    }
}

/// Timings, not tests (tests check behaviour, never time): run with
/// `cargo test --release --locked -p mfa-core -- --ignored --nocapture journal_bench`.
#[cfg(test)]
mod journal_bench {
    use std::fmt::Write as _;
    use std::time::{Duration, Instant};

    use super::super::fixtures::new_dir;
    use super::super::{JournalOptions, StateJournal};
    use super::SharedJournal;

    const USERS: u64 = 100_000;

    /// A journal of 100,000 users who each logged in once (all records live).
    fn journal_of_users(path: &std::path::Path) {
        let mut text = String::new();
        for u in 0..USERS {
            let _ = writeln!(text, "{{\"k\":\"totp\",\"u\":\"user{u:06}\",\"s\":\"T{u:06}\",\"v\":1}}");
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn report(what: &str, mut took: Vec<Duration>) {
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
        println!(
            "{what}: {} claims, median {:?}, p99 {:?}, p99.9 {:?}, worst {:?}",
            took.len(),
            at(0.5),
            at(0.99),
            at(0.999),
            took.last().unwrap()
        );
    }

    /// Claims of a fresh step by each user in turn, one thread, across a
    /// compaction of the 100,000 users' state: inline (the write that crosses
    /// compact_after rewrites the file, as StateJournal alone does) and on the
    /// compaction thread (SharedJournal, as the module holds it).
    #[test]
    #[ignore]
    fn journal_bench_claims_around_a_compaction() {
        let opts = JournalOptions { fsync: false, compact_after: 20_000 };
        let claims = 30_000u64;
        let dir = new_dir();
        let path = dir.journal_path();
        journal_of_users(&path);
        let mut inline = StateJournal::open(&path, opts).unwrap();
        let mut took = Vec::new();
        for u in 0..claims {
            let start = Instant::now();
            assert!(inline.claim_totp_step(&format!("user{u:06}"), &format!("T{u:06}"), 2).unwrap());
            took.push(start.elapsed());
        }
        report("inline compaction (before)", took);
        drop(inline);

        let dir = new_dir();
        let path = dir.journal_path();
        journal_of_users(&path);
        let shared = SharedJournal::open(&path, opts).unwrap();
        let mut took = Vec::new();
        for u in 0..claims {
            let (user, serial) = (format!("user{u:06}"), format!("T{u:06}"));
            let start = Instant::now();
            assert!(shared.write(|j| j.claim_totp_step(&user, &serial, 2)).unwrap());
            took.push(start.elapsed());
        }
        shared.finish_compaction();
        assert!(shared.lock().take_compaction_error().is_none());
        report("compaction thread (after)", took);
    }

    /// The process's resident memory, in bytes (VmRSS).
    fn resident() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    /// Resident memory the journal's state adds for 100,000 users who each logged
    /// in once (one TOTP claim each), as the module holds it (the names made
    /// before the measure). Run alone: other tests' memory would count.
    #[test]
    #[ignore]
    fn journal_bench_memory_of_100000_users() {
        let opts = JournalOptions { fsync: false, compact_after: 0 };
        let dir = new_dir();
        let path = dir.journal_path();
        let names: Vec<(String, String)> = (0..USERS).map(|u| (format!("user{u:06}"), format!("T{u:06}"))).collect();
        let shared = SharedJournal::open(&path, opts).unwrap();
        let before = resident();
        for (user, serial) in &names {
            assert!(shared.write(|j| j.claim_totp_step(user, serial, 1)).unwrap());
        }
        let added = resident() - before;
        assert_eq!(shared.lock().users().len(), USERS as usize);
        println!(
            "100,000 users, one TOTP token each: {:.1} MiB added by their logins ({} bytes per user)",
            added as f64 / (1 << 20) as f64,
            added / USERS
        );
    }

    /// Claims per second with fsync = yes, by threads claiming at once: one
    /// fdatasync each (StateJournal behind a mutex, as before) and shared
    /// (SharedJournal's group commit).
    #[test]
    #[ignore]
    fn journal_bench_fsync_claims_by_concurrency() {
        let opts = JournalOptions { fsync: true, compact_after: 0 };
        let per_thread = 300u64;
        for threads in [1u64, 4, 16] {
            let dir = new_dir();
            let alone = std::sync::Mutex::new(StateJournal::open(&dir.journal_path(), opts).unwrap());
            let before =
                run(threads, per_thread, |user, step| alone.lock().unwrap().claim_totp_step(user, "T1", step).unwrap());
            let dir = new_dir();
            let shared = SharedJournal::open(&dir.journal_path(), opts).unwrap();
            let after =
                run(threads, per_thread, |user, step| shared.write(|j| j.claim_totp_step(user, "T1", step)).unwrap());
            println!("fsync = yes, {threads:2} threads: {before:6.0} claims/s one sync each, {after:6.0} claims/s group commit");
        }
    }

    fn run(threads: u64, per_thread: u64, claim: impl Fn(&str, u64) -> bool + Sync) -> f64 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let claim = &claim;
                scope.spawn(move || {
                    let user = format!("user{t}");
                    for step in 0..per_thread {
                        assert!(claim(&user, step));
                    }
                });
            }
        });
        (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
    }
}

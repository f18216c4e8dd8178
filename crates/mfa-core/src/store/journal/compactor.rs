//! The compaction thread: one per journal, started by the first compaction due
//! (from a request, so after FreeRADIUS forked) and kept until the journal is
//! dropped. One thread for every compaction, not a new one each time: glibc
//! serves a thread from an arena of its own, and a new thread per compaction put
//! the rewrite's few megabytes in another arena each time, so the server's
//! resident memory grew by a step at each compaction (bench/soak.sh saw it).

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use super::shared::Inner;

pub(super) struct Compactor {
    signal: Arc<Signal>,
    thread: JoinHandle<()>,
}

#[derive(Default)]
struct Signal {
    state: Mutex<Wanted>,
    changed: Condvar,
}

#[derive(Default)]
struct Wanted {
    /// A compaction was asked for and has not started.
    due: bool,
    running: bool,
    stop: bool,
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, Wanted> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Compactor {
    pub(super) fn start(inner: &Arc<Inner>) -> io::Result<Compactor> {
        let signal = Arc::new(Signal::default());
        let (held, ours) = (Arc::clone(inner), Arc::clone(&signal));
        let thread = thread::Builder::new().name("mfa-compact".into()).spawn(move || run(&held, &ours))?;
        Ok(Compactor { signal, thread })
    }

    /// Asks for a compaction, unless one is asked for or running already.
    pub(super) fn request(&self) {
        let mut wanted = self.signal.lock();
        if !wanted.due && !wanted.running {
            wanted.due = true;
            self.signal.changed.notify_all();
        }
    }

    /// Waits until no compaction is asked for or running (tests).
    pub(super) fn wait_idle(&self) {
        let mut wanted = self.signal.lock();
        while wanted.due || wanted.running {
            wanted = self.signal.changed.wait(wanted).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops the thread, after the compaction it is running (one asked for and
    /// not started is left: the journal is whole without it), and waits for it.
    pub(super) fn stop(self) {
        self.signal.lock().stop = true;
        self.signal.changed.notify_all();
        let _ = self.thread.join();
    }

    #[cfg(test)]
    pub(super) fn thread_id(&self) -> thread::ThreadId {
        self.thread.thread().id()
    }
}

fn run(inner: &Inner, signal: &Signal) {
    loop {
        let mut wanted = signal.lock();
        while !wanted.due && !wanted.stop {
            wanted = signal.changed.wait(wanted).unwrap_or_else(|p| p.into_inner());
        }
        if wanted.stop {
            return;
        }
        wanted.due = false;
        wanted.running = true;
        drop(wanted);
        // A panic (a bug) ends this compaction, as it ended the thread of one
        // before, and not the thread: later ones still run.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| inner.compact()));
        signal.lock().running = false;
        signal.changed.notify_all();
    }
}

//! Counters for administrators: accepts, rejects by cause, challenges, pushes by
//! outcome, lockouts, written in the Prometheus text format (version 0.0.4) for
//! node_exporter's textfile collector.
//!
//! Counting is a relaxed atomic add: no lock and no allocation on a request's path.
//! The counters of an instance name are kept for the life of the process, so a HUP
//! (which builds a new instance) does not start them again from zero.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

mod render;
mod writer;

pub use render::render;
pub use writer::{write_atomically, Report, Writer};

/// Why a login was refused: one of a small closed set, the `cause` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// A wrong code (or a wrong answer to a challenge, or the backend's "wrong PIN or code").
    WrongCode,
    /// A code already used.
    Replayed,
    /// The user is locked (or this failure locked them).
    LockedOut,
    /// The user has no second factor enrolled.
    NoToken,
    /// The State is forged, foreign, expired or already answered.
    BadState,
    /// Past `limits.pushes`, `limits.codes_sent`, or too many logins waiting for a push.
    RateLimited,
    /// A request the module cannot read: a bad User-Name, no code, a code of the wrong form.
    Malformed,
    /// The store, a gateway or the backend failed: answered with `messages.internal`.
    Unavailable,
    PushDenied,
    PushTimeout,
    /// The push could not be sent (the provider failed or is unreachable).
    PushFailed,
    /// The remote backend (privacyIDEA, Duo) refused without saying more.
    Denied,
}

impl Cause {
    pub const ALL: [Cause; 12] = [
        Cause::WrongCode,
        Cause::Replayed,
        Cause::LockedOut,
        Cause::NoToken,
        Cause::BadState,
        Cause::RateLimited,
        Cause::Malformed,
        Cause::Unavailable,
        Cause::PushDenied,
        Cause::PushTimeout,
        Cause::PushFailed,
        Cause::Denied,
    ];

    /// The label's value.
    pub fn label(self) -> &'static str {
        match self {
            Cause::WrongCode => "wrong_code",
            Cause::Replayed => "replayed",
            Cause::LockedOut => "locked_out",
            Cause::NoToken => "no_token",
            Cause::BadState => "bad_state",
            Cause::RateLimited => "rate_limited",
            Cause::Malformed => "malformed",
            Cause::Unavailable => "unavailable",
            Cause::PushDenied => "push_denied",
            Cause::PushTimeout => "push_timeout",
            Cause::PushFailed => "push_failed",
            Cause::Denied => "denied",
        }
    }

    /// How a push ended, for the causes that end one.
    fn push(self) -> Option<Push> {
        match self {
            Cause::PushDenied => Some(Push::Denied),
            Cause::PushTimeout => Some(Push::Timeout),
            Cause::PushFailed => Some(Push::Failed),
            _ => None,
        }
    }
}

/// How a push ended: the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    Approved,
    Denied,
    Timeout,
    Failed,
}

impl Push {
    pub const ALL: [Push; 4] = [Push::Approved, Push::Denied, Push::Timeout, Push::Failed];

    pub fn label(self) -> &'static str {
        match self {
            Push::Approved => "approved",
            Push::Denied => "denied",
            Push::Timeout => "timeout",
            Push::Failed => "failed",
        }
    }
}

/// What one answer of the module counts as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tally {
    /// Nothing to count: the module left the decision to others (noop, updated).
    #[default]
    Nothing,
    Accept,
    /// An accept after the user approved a push.
    PushApproved,
    Challenge,
    /// A refusal; `locks`: this failure is the one that locked the user.
    Reject {
        cause: Cause,
        locks: bool,
    },
}

/// The counters of one module instance (by name), for the life of the process.
#[derive(Debug, Default)]
pub struct Counters {
    accepts: AtomicU64,
    challenges: AtomicU64,
    lockouts: AtomicU64,
    rejects: [AtomicU64; Cause::ALL.len()],
    pushes: [AtomicU64; Push::ALL.len()],
}

/// A snapshot of the counters, in the order of `Cause::ALL` and `Push::ALL`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub accepts: u64,
    pub challenges: u64,
    pub lockouts: u64,
    pub rejects: [u64; Cause::ALL.len()],
    pub pushes: [u64; Push::ALL.len()],
}

impl Snapshot {
    pub fn rejects(&self, cause: Cause) -> u64 {
        self.rejects[cause as usize]
    }
    pub fn pushes(&self, push: Push) -> u64 {
        self.pushes[push as usize]
    }
}

impl Counters {
    /// The counters of the instance `name`: the same ones again after a HUP. They
    /// live as long as the process (one set per instance name the server ever had).
    pub fn for_instance(name: &str) -> &'static Counters {
        static ALL: OnceLock<Mutex<HashMap<String, &'static Counters>>> = OnceLock::new();
        let mut all = ALL.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
        all.entry(name.to_string()).or_insert_with(|| Box::leak(Box::default()))
    }

    /// Counts one answer: the one place where answers are counted.
    pub fn count(&self, tally: Tally) {
        let add = |counter: &AtomicU64| {
            counter.fetch_add(1, Ordering::Relaxed);
        };
        match tally {
            Tally::Nothing => {}
            Tally::Accept => add(&self.accepts),
            Tally::PushApproved => {
                add(&self.accepts);
                add(&self.pushes[Push::Approved as usize]);
            }
            Tally::Challenge => add(&self.challenges),
            Tally::Reject { cause, locks } => {
                add(&self.rejects[cause as usize]);
                if let Some(push) = cause.push() {
                    add(&self.pushes[push as usize]);
                }
                if locks {
                    add(&self.lockouts);
                }
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            accepts: load(&self.accepts),
            challenges: load(&self.challenges),
            lockouts: load(&self.lockouts),
            rejects: std::array::from_fn(|i| load(&self.rejects[i])),
            pushes: std::array::from_fn(|i| load(&self.pushes[i])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_order_of_all() {
        for (i, cause) in Cause::ALL.iter().enumerate() {
            assert_eq!(*cause as usize, i, "{cause:?}");
        }
        for (i, push) in Push::ALL.iter().enumerate() {
            assert_eq!(*push as usize, i, "{push:?}");
        }
        let labels: std::collections::HashSet<_> = Cause::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(labels.len(), Cause::ALL.len());
    }

    #[test]
    fn each_tally_counts_where_it_says() {
        let c = Counters::default();
        c.count(Tally::Accept);
        c.count(Tally::PushApproved);
        c.count(Tally::Challenge);
        c.count(Tally::Nothing);
        c.count(Tally::Reject { cause: Cause::PushDenied, locks: false });
        c.count(Tally::Reject { cause: Cause::PushTimeout, locks: true });
        c.count(Tally::Reject { cause: Cause::WrongCode, locks: false });
        let s = c.snapshot();
        assert_eq!((s.accepts, s.challenges, s.lockouts), (2, 1, 1));
        assert_eq!(s.rejects(Cause::PushDenied), 1);
        assert_eq!(s.rejects(Cause::PushTimeout), 1);
        assert_eq!(s.rejects(Cause::WrongCode), 1);
        assert_eq!(s.rejects.iter().sum::<u64>(), 3);
        assert_eq!(s.pushes, [1, 1, 1, 0]);
    }

    #[test]
    fn an_instance_name_keeps_its_counters() {
        let first = Counters::for_instance("stats-test-keeps");
        first.count(Tally::Accept);
        assert_eq!(Counters::for_instance("stats-test-keeps").snapshot().accepts, 1);
        assert_eq!(Counters::for_instance("stats-test-other").snapshot().accepts, 0);
    }
}

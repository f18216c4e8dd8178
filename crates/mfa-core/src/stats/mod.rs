//! Counters for administrators: accepts, rejects by cause, challenges, pushes by
//! outcome, lockouts, failed outgoing calls and their latency, written in the Prometheus text format (version 0.0.4) for
//! node_exporter's textfile collector.
//!
//! Counting is a relaxed atomic add: no lock and no allocation on a request's path.
//! The counters of an instance name are kept for the life of the process, so a HUP
//! (which builds a new instance) does not start them again from zero.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

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
    /// An Accept that another module or policy gave without the second factor,
    /// refused by the post-auth check (a way around the module, tried).
    Unverified,
}

impl Cause {
    pub const ALL: [Cause; 13] = [
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
        Cause::Unverified,
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
            Cause::Unverified => "unverified",
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

/// An outgoing call whose latency is measured: the `call` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Push,
    Gateway,
    Smtp,
    PrivacyIdea,
    Duo,
    /// One operation on the shared store (`state_store = redis`).
    Redis,
}

impl Call {
    pub const ALL: [Call; 6] = [Call::Push, Call::Gateway, Call::Smtp, Call::PrivacyIdea, Call::Duo, Call::Redis];

    pub fn label(self) -> &'static str {
        match self {
            Call::Push => "push",
            Call::Gateway => "gateway",
            Call::Smtp => "smtp",
            Call::PrivacyIdea => "privacyidea",
            Call::Duo => "duo",
            Call::Redis => "redis",
        }
    }

    /// The `failures_total` kind a failed call counts under.
    fn kind(self) -> Failure {
        match self {
            Call::Push | Call::PrivacyIdea | Call::Duo => Failure::Provider,
            Call::Gateway | Call::Smtp => Failure::Gateway,
            Call::Redis => Failure::Store,
        }
    }
}

/// What failed: the `kind` label of `failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The push provider, privacyIDEA or Duo.
    Provider,
    /// The SMS or e-mail gateway (HTTP or SMTP).
    Gateway,
    /// The state store: an operation on Redis, or a journal write.
    Store,
}

impl Failure {
    pub const ALL: [Failure; 3] = [Failure::Provider, Failure::Gateway, Failure::Store];

    pub fn label(self) -> &'static str {
        match self {
            Failure::Provider => "provider",
            Failure::Gateway => "gateway",
            Failure::Store => "store",
        }
    }
}

/// The upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: [f64; 8] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// One call's latency histogram: counts per bucket (not cumulative), the sum in
/// microseconds, and whether the configuration uses the call (only those are written).
#[derive(Debug, Default)]
struct Histogram {
    used: AtomicBool,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A snapshot of one call's histogram; `buckets` cumulative, as Prometheus has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    pub buckets: [u64; BUCKETS.len()],
    pub sum_micros: u64,
    pub count: u64,
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
    /// An accept on the first factor alone: the push provider or Duo could not be
    /// used and its `failmode = safe` let the login in (a push that failed, too).
    FailsafeAccept,
    Challenge,
    /// The challenge of a push (`approval = challenge`) whose failure, counted as the
    /// push is sent, locked the user: the push is on the device, the challenge goes
    /// out all the same.
    ChallengeLocks,
    /// A refusal; `locks`: this failure is the one that locked the user.
    Reject {
        cause: Cause,
        locks: bool,
    },
    /// The refusal of a re-send that joined another request's login (here or on
    /// another server): its own reject, but the push's end and any lockout are the
    /// other request's to count.
    JoinedReject {
        cause: Cause,
    },
}

/// The counters of one module instance (by name), for the life of the process.
#[derive(Debug, Default)]
pub struct Counters {
    accepts: AtomicU64,
    failsafe_accepts: AtomicU64,
    challenges: AtomicU64,
    lockouts: AtomicU64,
    rejects: [AtomicU64; Cause::ALL.len()],
    pushes: [AtomicU64; Push::ALL.len()],
    failures: [AtomicU64; Failure::ALL.len()],
    calls: [Histogram; Call::ALL.len()],
}

/// A snapshot of the counters, in the order of `Cause::ALL` and `Push::ALL`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub accepts: u64,
    pub failsafe_accepts: u64,
    pub challenges: u64,
    pub lockouts: u64,
    pub rejects: [u64; Cause::ALL.len()],
    pub pushes: [u64; Push::ALL.len()],
    pub failures: [u64; Failure::ALL.len()],
    /// The calls the configuration uses, in the order of `Call::ALL`.
    pub calls: Vec<(Call, Latency)>,
}

impl Snapshot {
    pub fn rejects(&self, cause: Cause) -> u64 {
        self.rejects[cause as usize]
    }
    pub fn pushes(&self, push: Push) -> u64 {
        self.pushes[push as usize]
    }
    pub fn failures(&self, kind: Failure) -> u64 {
        self.failures[kind as usize]
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
            Tally::FailsafeAccept => {
                add(&self.accepts);
                add(&self.failsafe_accepts);
                add(&self.pushes[Push::Failed as usize]);
            }
            Tally::Challenge => add(&self.challenges),
            Tally::ChallengeLocks => {
                add(&self.challenges);
                add(&self.lockouts);
            }
            Tally::JoinedReject { cause } => add(&self.rejects[cause as usize]),
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

    /// The configuration uses `call`: its histogram is written (at zero until a call).
    pub fn uses(&self, call: Call) {
        self.calls[call as usize].used.store(true, Ordering::Relaxed);
    }

    /// A failure of `kind` that is no timed call (a journal write).
    pub fn failed(&self, kind: Failure) {
        self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One outgoing call, `took` long; a failed one counts in `failures_total` too.
    pub fn observe(&self, call: Call, took: Duration, failed: bool) {
        let h = &self.calls[call as usize];
        h.used.store(true, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        if let Some(at) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            h.buckets[at].fetch_add(1, Ordering::Relaxed);
        }
        h.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        h.count.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures[call.kind() as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            accepts: load(&self.accepts),
            failsafe_accepts: load(&self.failsafe_accepts),
            challenges: load(&self.challenges),
            lockouts: load(&self.lockouts),
            rejects: std::array::from_fn(|i| load(&self.rejects[i])),
            pushes: std::array::from_fn(|i| load(&self.pushes[i])),
            failures: std::array::from_fn(|i| load(&self.failures[i])),
            calls: Call::ALL
                .iter()
                .zip(&self.calls)
                .filter(|(_, h)| h.used.load(Ordering::Relaxed))
                .map(|(call, h)| {
                    let mut total = 0;
                    let buckets = std::array::from_fn(|i| {
                        total += load(&h.buckets[i]);
                        total
                    });
                    (*call, Latency { buckets, sum_micros: load(&h.sum_micros), count: load(&h.count) })
                })
                .collect(),
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
        c.count(Tally::FailsafeAccept);
        c.count(Tally::Challenge);
        c.count(Tally::Nothing);
        c.count(Tally::Reject { cause: Cause::PushDenied, locks: false });
        c.count(Tally::Reject { cause: Cause::PushTimeout, locks: true });
        c.count(Tally::Reject { cause: Cause::WrongCode, locks: false });
        c.count(Tally::ChallengeLocks);
        // A re-send that joined a denied push: its reject only, not a second push denied.
        c.count(Tally::JoinedReject { cause: Cause::PushDenied });
        let s = c.snapshot();
        assert_eq!((s.accepts, s.failsafe_accepts, s.challenges, s.lockouts), (3, 1, 2, 2));
        assert_eq!(s.rejects(Cause::PushDenied), 2);
        assert_eq!(s.rejects(Cause::PushTimeout), 1);
        assert_eq!(s.rejects(Cause::WrongCode), 1);
        assert_eq!(s.rejects.iter().sum::<u64>(), 4);
        assert_eq!(s.pushes, [1, 1, 1, 1]);
    }

    #[test]
    fn calls_fall_in_their_buckets_and_failures_count_by_kind() {
        let c = Counters::default();
        assert!(c.snapshot().calls.is_empty(), "no call used, no histogram");
        c.uses(Call::Smtp);
        c.observe(Call::Push, Duration::from_millis(5), false);
        c.observe(Call::Push, Duration::from_millis(300), true);
        c.observe(Call::Push, Duration::from_secs(11), false);
        let s = c.snapshot();
        assert_eq!(s.calls.len(), 2);
        let (call, push) = &s.calls[0];
        assert_eq!(*call, Call::Push);
        assert_eq!(push.buckets, [1, 1, 1, 1, 2, 2, 2, 2], "cumulative; 11 s is past the last bound");
        assert_eq!((push.count, push.sum_micros), (3, 11_305_000));
        assert_eq!(s.calls[1], (Call::Smtp, Latency::default()));
        assert_eq!(s.failures(Failure::Provider), 1);
        assert_eq!(s.failures(Failure::Gateway), 0);
    }

    #[test]
    fn an_instance_name_keeps_its_counters() {
        let first = Counters::for_instance("stats-test-keeps");
        first.count(Tally::Accept);
        assert_eq!(Counters::for_instance("stats-test-keeps").snapshot().accepts, 1);
        assert_eq!(Counters::for_instance("stats-test-other").snapshot().accepts, 0);
    }
}

//! The post-auth check: no Accept of a user who must present a second factor
//! unless the module verified it in this login, whatever the wiring.
//!
//! An Accept can come about without the module's authenticate: an Auth-Type set by
//! policy before the module (`Accept`, `PAP`), rlm_eap replacing `Auth-Type mfa`
//! with its own (EAP-MD5, PEAP or TTLS with an inner MSCHAPv2, CHAP...). The module's
//! post-auth method, listed in the post-auth section of every site that uses it,
//! refuses those, with one log line naming the path that tried.
//!
//! "Verified in this login" is, for a request of its own (RADIUS, or an inner-tunnel
//! request), a mark the FFI layer keeps with the request when authenticate accepts.
//! For the outer request of an EAP login the inner tunnel did the work, possibly in
//! an earlier round (PEAP sends its Accept one round after the inner success): the
//! inner requests leave a handle in the outer login's session-state, which FreeRADIUS
//! carries from round to round and drops with the login, and the records behind the
//! handles live here, in [`Logins`], where nothing a client sends can reach them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Backend, DuoEngine, Engine, LogLine, Outcome, PiEngine, Trail};

/// Whether a user must present a second factor to a module instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Duty {
    /// The user is in the token file, or `require_token = yes` (privacyIDEA: always).
    /// The name is the one the token store knows, for the log.
    Required(String),
    /// Not in the token file, and `require_token = no`: the rest of the
    /// configuration decides.
    NotRequired,
}

/// What post-auth reads from the request.
pub struct PostAuthInput<'a> {
    pub user_name: Option<&'a [u8]>,
    /// The module's authenticate accepted this request.
    pub verified_here: bool,
    /// What inner tunnels recorded for this instance in the login's session-state
    /// (outer requests only; taken from [`Logins`]).
    pub tunnel: Vec<Record>,
    /// How the Accept came about, for the log line, e.g. `Auth-Type "EAP", EAP-Type "MD5"`.
    pub path: &'a str,
    /// The server prints no debug lines for this request: the engine builds none.
    pub quiet: bool,
}

pub struct PostAuthOutput {
    pub outcome: Outcome,
    pub log: Vec<LogLine>,
}

impl PostAuthOutput {
    /// What this answer counts as: a refused Accept, as `unverified`; nothing else
    /// (the login was counted when the module checked it, if it did).
    pub fn tally(&self) -> crate::stats::Tally {
        match self.outcome {
            Outcome::Reject => crate::stats::Tally::Reject { cause: crate::stats::Cause::Unverified, locks: false },
            _ => crate::stats::Tally::Nothing,
        }
    }
}

impl Engine {
    fn duty(&self, user_name: Option<&[u8]>) -> Duty {
        let mut trail = Trail::default();
        match self.resolve(user_name, &mut trail) {
            Ok(names) if self.cfg.require_token || self.tokens(&mut trail).user(&names.lookup).is_some() => {
                Duty::Required(names.lookup.into_owned())
            }
            Ok(_) => Duty::NotRequired,
            Err(_) if self.cfg.require_token => Duty::Required(shown(user_name)),
            Err(_) => Duty::NotRequired,
        }
    }
}

impl PiEngine {
    /// privacyIDEA decides who has a token: every user is its to check.
    fn duty(&self, user_name: Option<&[u8]>) -> Duty {
        match self.names(user_name) {
            Ok((user, _)) => Duty::Required(user),
            Err(_) => Duty::Required(shown(user_name)),
        }
    }
}

impl DuoEngine {
    /// Duo decides who has a second factor: every user is its to check.
    fn duty(&self, user_name: Option<&[u8]>) -> Duty {
        match super::parse_user_name(user_name, &self.config().realm) {
            Ok(parsed) => Duty::Required(parsed.user.to_owned()),
            Err(_) => Duty::Required(shown(user_name)),
        }
    }
}

/// A User-Name for a log line, whatever it holds.
pub(super) fn shown(user_name: Option<&[u8]>) -> String {
    match user_name {
        Some(name) => String::from_utf8_lossy(name).chars().filter(|c| !c.is_control()).collect(),
        None => "(no User-Name)".into(),
    }
}

impl Backend {
    /// Whether `user_name` must present a second factor to this instance.
    pub fn duty(&self, user_name: Option<&[u8]>) -> Duty {
        match self {
            Backend::Local(e) => e.duty(user_name),
            Backend::PrivacyIdea(e) => e.duty(user_name),
            Backend::Duo(e) => e.duty(user_name),
        }
    }

    /// The check on an Accept: `Ok` when the module verified the second factor in
    /// this login, `Noop` when the user has none to present, `Reject` otherwise.
    pub fn post_auth(&self, input: PostAuthInput<'_>) -> PostAuthOutput {
        let _budget = self.store_budget();
        let mut trail = Trail { quiet: input.quiet, ..Trail::default() };
        let outcome = self.post_auth_inner(&input, &mut trail);
        PostAuthOutput { outcome, log: trail.log }
    }

    fn post_auth_inner(&self, input: &PostAuthInput<'_>, trail: &mut Trail) -> Outcome {
        if input.verified_here {
            trail.debug("post-auth: the second factor was verified in this request");
            return Outcome::Ok;
        }
        if let Some(inner) = input.tunnel.iter().find(|r| r.verified) {
            trail.debug(format!("post-auth: the second factor of \"{}\" was verified inside the tunnel", inner.user));
            return Outcome::Ok;
        }
        // The inner tunnel left a handle, so the outer name says nothing (it may be
        // "anonymous"): without its record nothing tells the Accept is verified.
        if input.tunnel.iter().any(|r| r.gone) {
            trail.warn(format!(
                "rejected: the Accept of \"{}\" came through {}, and the record the inner tunnel left for this \
                 login is gone (kept {} s at most, the oldest dropped past {} logins in progress): {} cannot \
                 tell whether the second factor was verified",
                shown(input.user_name),
                input.path,
                Logins::LIFETIME,
                Logins::CAPACITY,
                self.name()
            ));
            return Outcome::Reject;
        }
        if let Some(inner) = input.tunnel.first() {
            trail.warn(format!(
                "rejected: the inner tunnel let \"{}\" in without the second factor, then the Accept came \
                 through {} (list {} in the post-auth section of the inner-tunnel site too)",
                inner.user,
                input.path,
                self.name()
            ));
            return Outcome::Reject;
        }
        match self.duty(input.user_name) {
            Duty::NotRequired => {
                trail.debug("post-auth: the user has no second factor to present");
                Outcome::Noop
            }
            Duty::Required(user) => {
                trail.warn(format!(
                    "rejected: an Accept of \"{user}\" without the second factor, through {}: \
                     {} did not verify it in this login",
                    input.path,
                    self.name()
                ));
                Outcome::Reject
            }
        }
    }
}

/// A handle in an outer login's session-state.
pub type Handle = [u8; 16];

/// What session-state holds for `instance`'s handle: the handle, then the instance's
/// name, so that a handle whose record is gone is still known as that instance's.
pub fn stored(handle: &Handle, instance: &str) -> Vec<u8> {
    [handle.as_slice(), instance.as_bytes()].concat()
}

/// The handle a session-state value holds, if it is `instance`'s.
pub fn handle_of(value: &[u8], instance: &str) -> Option<Handle> {
    let (handle, name) = value.split_at_checked(std::mem::size_of::<Handle>())?;
    if name != instance.as_bytes() {
        return None;
    }
    handle.try_into().ok()
}

/// What an inner tunnel recorded for the outer login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The module instance's name.
    pub instance: String,
    /// The inner user's name, for the log.
    pub user: String,
    /// The instance's authenticate accepted the inner user.
    pub verified: bool,
    /// The handle was in session-state but its record is gone (expired, or dropped
    /// from a full table): the Accept is refused.
    pub gone: bool,
    created: u64,
}

/// The records behind the handles of logins in progress, process-wide (a HUP builds
/// new instances while logins go on). Bounded: an abandoned login's record goes
/// after [`Logins::LIFETIME`] seconds, or first when the table is full, and a login
/// that finds its record gone is refused (it fails closed).
pub struct Logins {
    records: Mutex<BTreeMap<Handle, Record>>,
}

impl Default for Logins {
    fn default() -> Self {
        Self::new()
    }
}

impl Logins {
    /// Longer than any EAP login (FreeRADIUS drops an EAP session idle for
    /// eap's `timer_expire`, 60 s by default, and each round is a few seconds).
    pub const LIFETIME: u64 = 600;
    pub const CAPACITY: usize = 100_000;

    pub const fn new() -> Logins {
        Logins { records: Mutex::new(BTreeMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Handle, Record>> {
        // A panic while holding the lock leaves a usable map: every change is one insert or remove.
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new record; None when the system's random number generator fails.
    pub fn open(&self, instance: &str, user: &str, verified: bool, now: u64) -> Option<Handle> {
        let mut handle = [0u8; 16];
        getrandom::getrandom(&mut handle).ok()?;
        let mut records = self.lock();
        if records.len() >= Self::CAPACITY {
            records.retain(|_, r| now.saturating_sub(r.created) < Self::LIFETIME);
        }
        if records.len() >= Self::CAPACITY {
            // Full of logins in progress (tunnels opened and never verified, a flood
            // say): room for a hundredth at once, so that this scan is rare, taken from
            // the oldest unverified records first. A login whose code was accepted
            // keeps its record, and its Accept (one round later) is not refused.
            let mut by_age: Vec<(bool, u64, Handle)> =
                records.iter().map(|(h, r)| (r.verified, r.created, *h)).collect();
            let room = Self::CAPACITY / 100;
            by_age.select_nth_unstable(room - 1);
            for (_, _, h) in &by_age[..room] {
                records.remove(h);
            }
        }
        let record =
            Record { instance: instance.to_string(), user: user.to_string(), verified, gone: false, created: now };
        records.insert(handle, record);
        Some(handle)
    }

    /// The record behind `handle`, if it is still there.
    pub fn get(&self, handle: &Handle) -> Option<Record> {
        self.lock().get(handle).cloned()
    }

    /// Marks the record verified for `user`; false when it is gone.
    pub fn verify(&self, handle: &Handle, user: &str) -> bool {
        match self.lock().get_mut(handle) {
            Some(r) => {
                r.verified = true;
                r.user = user.to_string();
                true
            }
            None => false,
        }
    }

    /// Removes and returns the record: each is used by one Accept at most.
    pub fn take(&self, handle: &Handle) -> Option<Record> {
        self.lock().remove(handle)
    }

    /// `instance`'s handle among session-state `values` whose record is still here.
    pub fn own(&self, values: &[Vec<u8>], instance: &str) -> Option<Handle> {
        values.iter().filter_map(|v| handle_of(v, instance)).find(|h| self.lock().contains_key(h))
    }

    /// The records behind `instance`'s handles among session-state `values`, taken
    /// (each counts for one Accept); a handle whose record is gone gives a record
    /// marked `gone`, which refuses the Accept (fails closed).
    pub fn take_all(&self, values: &[Vec<u8>], instance: &str) -> Vec<Record> {
        values
            .iter()
            .filter_map(|v| handle_of(v, instance))
            .map(|h| {
                self.take(&h).unwrap_or_else(|| Record {
                    instance: instance.to_string(),
                    user: String::new(),
                    verified: false,
                    gone: true,
                    created: 0,
                })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_taken_once() {
        let logins = Logins::new();
        let h = logins.open("mfa", "alice", false, 100).unwrap();
        assert!(!logins.get(&h).unwrap().verified);
        assert!(logins.verify(&h, "alice"));
        let r = logins.take(&h).unwrap();
        assert!(r.verified);
        assert_eq!((r.instance.as_str(), r.user.as_str()), ("mfa", "alice"));
        assert!(logins.take(&h).is_none());
        assert!(!logins.verify(&h, "alice"));
    }

    #[test]
    fn a_handle_is_known_by_its_instance_and_a_gone_record_says_so() {
        let logins = Logins::new();
        let mine = logins.open("mfa", "alice", true, 100).unwrap();
        let theirs = logins.open("mfa_pi", "alice", false, 100).unwrap();
        let lost = [7u8; 16];
        let values = vec![stored(&mine, "mfa"), stored(&theirs, "mfa_pi"), stored(&lost, "mfa"), mine.to_vec()];
        assert_eq!(handle_of(&values[0], "mfa"), Some(mine));
        assert_eq!(handle_of(&values[0], "mfa_p"), None);
        assert_eq!(logins.own(&values, "mfa"), Some(mine));
        let taken = logins.take_all(&values, "mfa");
        assert_eq!(taken.iter().map(|r| (r.verified, r.gone)).collect::<Vec<_>>(), [(true, false), (false, true)]);
        // Another instance's handle is left to it, taken or not.
        assert!(logins.get(&theirs).is_some());
        assert_eq!(logins.take_all(&values, "mfa").iter().filter(|r| r.gone).count(), 2, "taken once");
    }

    #[test]
    fn a_full_table_drops_the_expired_then_the_oldest_unverified() {
        let logins = Logins::new();
        let first = logins.open("mfa", "u0", false, 0).unwrap();
        let verified = logins.open("mfa", "v", true, 500).unwrap();
        for i in 2..Logins::CAPACITY {
            logins.open("mfa", &format!("u{i}"), false, 1_000 + i as u64).unwrap();
        }
        assert_eq!(logins.len(), Logins::CAPACITY);
        // `first` has expired by LIFETIME: it alone goes.
        let late = logins.open("mfa", "late", false, Logins::LIFETIME).unwrap();
        assert!(logins.get(&first).is_none());
        assert_eq!(logins.len(), Logins::CAPACITY);
        // None expired: a hundredth goes, the oldest unverified ones ("late" first);
        // the verified record, older than all of them, stays.
        let newest = logins.open("mfa", "newest", false, 1_001).unwrap();
        assert!(logins.get(&late).is_none() && logins.get(&newest).is_some());
        assert!(logins.get(&verified).is_some(), "a verified login keeps its record");
        assert_eq!(logins.len(), Logins::CAPACITY - Logins::CAPACITY / 100 + 1);
    }
}

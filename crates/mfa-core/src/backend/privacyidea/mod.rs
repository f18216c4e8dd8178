//! The privacyIDEA backend: the whole credential goes to privacyIDEA's
//! `/validate/check`, so that its PIN, passthru and LDAP policies decide as
//! they do for its other clients; its challenges become Access-Challenges
//! whose State is rlm_mfa's own sealed one (the transaction id inside, bound
//! to user and NAS), and push tokens are polled within a bound.

pub mod answer;
pub mod client;

use std::time::Duration;

pub use answer::{AnswerError, Challenge, CheckAnswer, PollStatus, Verdict};
pub use client::{CallError, Called, ClientConfig, HttpClient, Validate};

/// How a login with a push token in its challenge waits for the approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// The request polls until approved, declined or `poll_wait` (a thread waits).
    Wait,
    /// Access-Challenge at once; the answer round (empty, or an OTP) checks.
    Challenge,
}

/// The checked `privacyidea { }` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiConfig {
    pub client: ClientConfig,
    /// Sent as `realm` for every user, whatever the request's realm (the Perl plugin's REALM).
    pub realm: Option<String>,
    /// RADIUS realm (compared without case) to privacyIDEA realm.
    pub realms: Vec<(String, String)>,
    pub poll: PollMode,
    pub poll_wait: Duration,
    pub poll_interval: Duration,
    /// Logins polling at once, at most; more get the challenge instead.
    pub max_waiting: usize,
    /// Cut User-Password at its first NUL (for NAS that pad it).
    pub split_null_byte: bool,
    /// Send the NAS's address as `client` (privacyIDEA honours it for trusted proxies).
    pub send_client: bool,
}

impl PiConfig {
    /// The privacyIDEA realm for a request's realm.
    pub fn realm_for<'a>(&'a self, radius_realm: Option<&'a str>) -> Option<&'a str> {
        if let Some(fixed) = &self.realm {
            return Some(fixed);
        }
        let realm = radius_realm?;
        Some(self.realms.iter().find(|(from, _)| from.eq_ignore_ascii_case(realm)).map_or(realm, |(_, to)| to.as_str()))
    }
}

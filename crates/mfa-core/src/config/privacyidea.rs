//! The `privacyidea { }` section (backend = privacyidea), checked.

use std::path::PathBuf;
use std::time::Duration;

use super::{choice, invalid, optional_path, ConfigError, RequestTime};
use crate::text::url::redact;

crate::section! {
    /// The items of the `privacyidea { }` section, before checking.
    pub struct RawPrivacyIdea {
        /// One or more base URLs separated by spaces, tried in order. May carry credentials.
        url: Option<String> [secret()],
        /// Sent as `realm` for every user.
        realm: Option<String>,
        /// `whole`: the User-Name as received (privacyIDEA splits it); `split`: user and realm.
        user_name: Option<String> = "whole",
        ca_file: Option<String>,
        ca_path: Option<String>,
        api_key: Option<String> [secret()],
        api_key_header: Option<String> = "Authorization",
        timeout: u32 = "4" [range(1, 60, "seconds")],
        skip_failing: u32 = "30",
        reuse_connections: bool = "yes",
        poll: Option<String> = "wait",
        poll_wait: u32 = "15" [range(5, 600, "seconds")],
        poll_interval: u32 = "1" [range(1, 60, "seconds")],
        max_waiting: u32 = "8" [range(1, 10_000, "logins")],
        split_null_byte: bool = "no",
        send_client: bool = "yes",
    }
    other {
        /// The pairs of the `realms { }` subsection: RADIUS realm = privacyIDEA realm.
        realms: Vec<(String, String)>,
    }
}

/// How a login with a push token in its challenge waits for the approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// The request polls until approved, declined or `poll_wait` (a thread waits).
    Wait,
    /// Access-Challenge at once; the answer round (empty, or an OTP) checks.
    Challenge,
}

/// What is sent as `user` (and `realm`) for a User-Name with a realm in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserName {
    /// The User-Name as received, as the Perl plugin sends it: privacyIDEA splits
    /// "user@realm" itself where the part after "@" is one of its realms, and looks
    /// any other name (e-mail-style, UPN) up whole in its default realm.
    /// A realm listed in `realms { }` is still split off and translated.
    Whole,
    /// The name without its realm as `user`, and the realm (translated by
    /// `realms { }`) as `realm`.
    Split,
}

/// The checked `privacyidea { }` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiConfig {
    pub client: ClientConfig,
    /// Sent as `realm` for every user, whatever the request's realm (the Perl plugin's REALM).
    pub realm: Option<String>,
    /// RADIUS realm (compared without case) to privacyIDEA realm.
    pub realms: Vec<(String, String)>,
    pub user_name: UserName,
    pub poll: PollMode,
    pub poll_wait: Duration,
    pub poll_interval: Duration,
    /// The longest a login may take (`poll_wait + 3 x timeout`, or `2 x timeout`
    /// with `poll = challenge`), which the start-up check keeps under
    /// `max_request_time`: also the longest a NAS's re-send waits for the login it joined.
    pub longest: Duration,
    /// Logins polling at once, at most; more get the challenge instead.
    pub max_waiting: usize,
    /// Cut User-Password at its first NUL (for NAS that pad it).
    pub split_null_byte: bool,
    /// Send the NAS's address as `client` (privacyIDEA honours it for trusted proxies).
    pub send_client: bool,
}

impl PiConfig {
    /// What to send as `user` and `realm` for a User-Name: `whole` is the name as
    /// received, `user` and `radius_realm` are its parts (per `realm { }`).
    pub fn user_and_realm(&self, whole: &str, user: &str, radius_realm: Option<&str>) -> (String, Option<String>) {
        let listed = radius_realm.is_some_and(|r| self.realms.iter().any(|(from, _)| from.eq_ignore_ascii_case(r)));
        if self.user_name == UserName::Whole && radius_realm.is_some() && !listed {
            return (whole.to_string(), self.realm.clone());
        }
        (user.to_string(), self.realm_for(radius_realm).map(str::to_string))
    }

    /// The privacyIDEA realm for a request's realm.
    fn realm_for<'a>(&'a self, radius_realm: Option<&'a str>) -> Option<&'a str> {
        if let Some(fixed) = &self.realm {
            return Some(fixed);
        }
        let realm = radius_realm?;
        Some(self.realms.iter().find(|(from, _)| from.eq_ignore_ascii_case(realm)).map_or(realm, |(_, to)| to.as_str()))
    }
}

/// How to reach privacyIDEA.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URLs (`https://pi.example.com`), tried in order.
    pub urls: Vec<String>,
    /// Bound on one HTTP call, from the name lookup to the answer's last byte.
    pub timeout: Duration,
    /// How long a server that failed is passed over.
    pub skip_failing: Duration,
    /// The header and the value that carry an API key; a secret.
    pub api_key: Option<(String, String)>,
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    /// Keep connections open for the next request.
    pub reuse_connections: bool,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("urls", &self.urls.iter().map(|u| redact(u)).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("api_key", &self.api_key.as_ref().map(|(h, _)| (h, "<redacted>")))
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .field("reuse_connections", &self.reuse_connections)
            .finish()
    }
}

/// Checks the section. A poll wait and the calls around it, with the state
/// store's wait, must end before the server's max_request_time.
pub fn settings(raw: &RawPrivacyIdea, request_time: RequestTime) -> Result<PiConfig, ConfigError> {
    let urls: Vec<String> =
        raw.url.as_deref().unwrap_or("").split_whitespace().map(|u| u.trim_end_matches('/').to_string()).collect();
    if urls.is_empty() {
        return Err(invalid("privacyidea.url", "backend privacyidea needs privacyIDEA's URL"));
    }
    if let Some(bad) = urls.iter().find(|u| !crate::text::url::has_http_scheme(u)) {
        return Err(invalid(
            "privacyidea.url",
            format!("\"{}\" is not an http:// or https:// URL", crate::text::url::redact(bad)),
        ));
    }
    let poll = choice(
        "privacyidea.poll",
        raw.poll.as_deref(),
        PollMode::Wait,
        &[("wait", PollMode::Wait), ("challenge", PollMode::Challenge)],
    )?;
    // A login may make a check, a wait with polls, and a final check: all within
    // the server's max_request_time, or it abandons the request mid-way.
    let longest = if poll == PollMode::Wait { raw.poll_wait + 3 * raw.timeout } else { 2 * raw.timeout };
    if let Some(words) = request_time.refuses("a login", longest, "") {
        return Err(invalid(
            if poll == PollMode::Wait { "privacyidea.poll_wait" } else { "privacyidea.timeout" },
            words,
        ));
    }
    let api_key = raw.api_key.as_deref().filter(|k| !k.is_empty()).map(|key| {
        let header = raw.api_key_header.as_deref().map(str::trim).filter(|h| !h.is_empty()).unwrap_or("Authorization");
        (header.to_string(), key.to_string())
    });
    let user_name = choice(
        "privacyidea.user_name",
        raw.user_name.as_deref(),
        UserName::Whole,
        &[("whole", UserName::Whole), ("split", UserName::Split)],
    )?;
    let mut realms = Vec::new();
    for (from, to) in &raw.realms {
        if from.is_empty() || to.is_empty() {
            return Err(invalid("privacyidea.realms", "each line is: RADIUS realm = privacyIDEA realm"));
        }
        realms.push((from.clone(), to.clone()));
    }
    Ok(PiConfig {
        client: ClientConfig {
            urls,
            timeout: Duration::from_secs(u64::from(raw.timeout)),
            skip_failing: Duration::from_secs(u64::from(raw.skip_failing)),
            api_key,
            ca_file: optional_path(&raw.ca_file),
            ca_path: optional_path(&raw.ca_path),
            reuse_connections: raw.reuse_connections,
        },
        realm: raw.realm.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string),
        realms,
        user_name,
        poll,
        poll_wait: Duration::from_secs(u64::from(raw.poll_wait)),
        poll_interval: Duration::from_secs(u64::from(raw.poll_interval)),
        longest: Duration::from_secs(u64::from(longest)),
        max_waiting: raw.max_waiting as usize,
        split_null_byte: raw.split_null_byte,
        send_client: raw.send_client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stock max_request_time, with the local journal (no store wait).
    const THIRTY: RequestTime = RequestTime { max_request_time: 30, store_wait: Duration::ZERO };

    fn good() -> RawPrivacyIdea {
        RawPrivacyIdea {
            url: Some("https://pi1.example.com/ https://pi2.example.com".into()),
            timeout: 2,
            skip_failing: 30,
            reuse_connections: true,
            poll_wait: 15,
            poll_interval: 1,
            max_waiting: 8,
            ..RawPrivacyIdea::default()
        }
    }

    /// What the start-up check counts is what a re-send of a login waits at most.
    #[test]
    fn the_longest_a_login_takes_is_what_max_request_time_is_checked_against() {
        let cfg = settings(&good(), THIRTY).unwrap();
        assert_eq!(cfg.longest, Duration::from_secs(15 + 3 * 2), "poll_wait + 3 x timeout");
        let raw = RawPrivacyIdea { poll: Some("challenge".into()), ..good() };
        assert_eq!(settings(&raw, THIRTY).unwrap().longest, Duration::from_secs(4), "2 x timeout");
    }

    #[test]
    fn urls_in_order_and_defaults() {
        let cfg = settings(&good(), THIRTY).unwrap();
        assert_eq!(cfg.client.urls, ["https://pi1.example.com", "https://pi2.example.com"]);
        assert_eq!(cfg.poll, PollMode::Wait);
        assert_eq!(cfg.client.api_key, None);
    }

    #[test]
    fn errors_name_the_item() {
        let mut raw = good();
        raw.url = None;
        assert_eq!(settings(&raw, THIRTY).unwrap_err().item, "privacyidea.url");
        raw.url = Some("ftp://x".into());
        assert_eq!(settings(&raw, THIRTY).unwrap_err().item, "privacyidea.url");
        let mut raw = good();
        raw.poll_wait = 25;
        assert_eq!(settings(&raw, THIRTY).unwrap_err().item, "privacyidea.poll_wait");
        let mut raw = good();
        raw.realms = vec![("".into(), "corp".into())];
        assert_eq!(settings(&raw, THIRTY).unwrap_err().item, "privacyidea.realms");
    }

    #[test]
    fn a_name_with_an_unlisted_realm_is_sent_whole_unless_split() {
        let mut raw = good();
        raw.realms = vec![("Example.COM".into(), "corp".into())];
        let cfg = settings(&raw, THIRTY).unwrap();
        assert_eq!(cfg.user_name, UserName::Whole);
        let sent = |cfg: &PiConfig, whole, user, realm| cfg.user_and_realm(whole, user, realm);
        assert_eq!(sent(&cfg, "bob@mail.test", "bob", Some("mail.test")), ("bob@mail.test".into(), None));
        assert_eq!(sent(&cfg, "bob@example.com", "bob", Some("example.com")), ("bob".into(), Some("corp".into())));
        assert_eq!(sent(&cfg, "bob", "bob", None), ("bob".into(), None));
        raw.realm = Some("fixed".into());
        let cfg = settings(&raw, THIRTY).unwrap();
        assert_eq!(
            sent(&cfg, "bob@mail.test", "bob", Some("mail.test")),
            ("bob@mail.test".into(), Some("fixed".into()))
        );
        raw.realm = None;
        raw.user_name = Some("split".into());
        let cfg = settings(&raw, THIRTY).unwrap();
        assert_eq!(sent(&cfg, "bob@mail.test", "bob", Some("mail.test")), ("bob".into(), Some("mail.test".into())));
        raw.user_name = Some("halves".into());
        assert_eq!(settings(&raw, THIRTY).unwrap_err().item, "privacyidea.user_name");
    }

    #[test]
    fn realm_mapping() {
        let mut raw = good();
        raw.realms = vec![("Example.COM".into(), "corp".into())];
        let cfg = settings(&raw, RequestTime::default()).unwrap();
        assert_eq!(cfg.realm_for(Some("example.com")), Some("corp"));
        assert_eq!(cfg.realm_for(Some("other")), Some("other"));
        assert_eq!(cfg.realm_for(None), None);
        raw.realm = Some("fixed".into());
        assert_eq!(settings(&raw, RequestTime::default()).unwrap().realm_for(Some("example.com")), Some("fixed"));
    }
}

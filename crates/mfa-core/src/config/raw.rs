//! The `mfa { }` section's items, each declared once (see [`super::declare`]):
//! the top level, and its `realm { }` and `lockout { }` subsections. The other
//! subsections are declared beside their checks (gateway.rs, push.rs,
//! privacyidea.rs, duo.rs, messages.rs).

use super::duo::RawDuo;
use super::gateway::RawGateway;
use super::limits::Limits;
use super::messages::Messages;
use super::privacyidea::RawPrivacyIdea;
use super::push::RawPush;
use super::redis::RawRedis;
use super::reply::RawRule;
use super::smtp::RawSmtp;

crate::section! {
    /// The items of the `mfa { }` section as FreeRADIUS hands them over, before checking.
    pub struct RawConfig {
        /// `local` (the token file), `privacyidea` or `duo`.
        backend: Option<String> = "local",
        /// `otp`, `password+otp`, `password-then-otp`, `auto` or `push`.
        mode: Option<String> = "otp",
        /// The token file.
        tokens: Option<String> = "${modconfdir}/mfa/tokens.json",
        /// The state journal.
        state: Option<String> = "${db_dir}/mfa/state.jsonl",
        fsync: bool = "no",
        /// `journal` (this server's `state` file) or `redis` (the `redis { }` section, shared by a farm).
        state_store: Option<String> = "journal",
        require_token: bool = "yes",
        /// `no`: where no password has been checked yet, one answer for unknown,
        /// unenrolled and locked users alike; `yes`: say which.
        detailed_messages: bool = "no",
        ignore_case: bool = "no",
        /// TOTP steps accepted either side of now: more only helps an attacker.
        totp_window: u32 = "1" [range(0, 10, "steps")],
        hotp_look_ahead: u32 = "10" [range(0, 1000, "codes")],
        separator: Option<String> = ",",
        otp_position: Option<String> = "last",
        otp_length: u32 = "6" [range(6, 8, "digits")],
        /// auto mode: what after the separator counts as a code (a whole match).
        auto_code_pattern: Option<String> = "[0-9]{6,8}",
        user_suffix: Option<String>,
        user_map: Option<String>,
        /// The key sealing each challenge's State.
        state_key: Option<String> = "${modconfdir}/mfa/state.key",
        challenge_timeout: u32 = "180" [range(10, 3600, "seconds")],
        max_rounds: u32 = "3" [range(1, 10, "rounds")],
        /// Codes sent by SMS or e-mail.
        code_length: u32 = "6" [range(4, 10, "digits")],
        code_lifetime: u32 = "300" [range(30, 3600, "seconds")],
    }
    sections {
        sms: RawGateway,
        email: RawGateway,
        smtp: RawSmtp,
        push: RawPush,
        realm: RawRealm,
        lockout: RawLockout,
        stats: RawStats,
        limits: Limits,
        redis: RawRedis,
        messages: Messages,
        privacyidea: RawPrivacyIdea,
        duo: RawDuo,
    }
    other {
        /// The `reply <attribute> { }` sections.
        reply: Vec<RawRule>,
        /// The server's max_request_time (radiusd.conf), 0 when unknown.
        server_max_request_time: u32,
    }
}

crate::section! {
    /// `realm { }`: splitting `user@realm` or `DOMAIN\user`.
    pub struct RawRealm {
        /// `@` or `\`.
        delimiter: Option<String> = "@",
        split: Option<String> = "last",
        /// No default: `suffix` for `@`, `prefix` for `\`.
        position: Option<String>,
        strip: bool = "yes",
    }
}

crate::section! {
    /// `lockout { }`.
    pub struct RawLockout {
        /// Consecutive failures that lock the user; 0 never locks.
        max_failures: u32 = "5",
        /// Seconds the user stays locked.
        duration: u32 = "300",
    }
}

crate::section! {
    /// `stats { }`: the counters, written for node_exporter's textfile collector.
    pub struct RawStats {
        /// The file the counters are written to (Prometheus text format); unset: not written.
        file: Option<String>,
        /// Seconds between two writes.
        interval: u32 = "15" [range(1, 3600, "seconds")],
    }
}

//! `state_store = redis` and the `redis { }` section: the Redis (or Valkey)
//! server, or the Sentinels that know it, where a farm of servers keeps the
//! state every login's decision depends on.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{invalid, ConfigError};

crate::section! {
    /// The items of the `redis { }` section, before checking.
    pub struct RawRedis {
        /// `host:port`; with `sentinel_service`, the Sentinels' `host:port`s (comma- or space-separated).
        server: Option<String> = "127.0.0.1:6379",
        /// The primary's name as the Sentinels monitor it; unset: `server` is Redis itself.
        sentinel_service: Option<String>,
        /// The ACL user (Redis 6 and later); unset: `default`.
        username: Option<String>,
        password: Option<String> [secret()],
        /// The Sentinels' own password, when they ask for one.
        sentinel_password: Option<String> [secret()],
        database: u32 = "0" [range(0, 1000, "")],
        /// Every key starts with it and a colon.
        prefix: Option<String> = "mfa" [max_len(64, "a key prefix")],
        tls: bool = "no",
        /// The CA certificates (PEM) that sign the servers' certificates; unset: the system's trust store.
        ca_file: Option<String>,
        /// A directory of CA certificates (PEM files, as `c_rehash` leaves them); with `ca_file`, both are trusted.
        ca_path: Option<String>,
        /// Bound on each exchange with Redis (connect, then each reply), in milliseconds.
        timeout_ms: u32 = "500" [range(10, 10_000, "milliseconds")],
        /// Replicas that must hold a claim before the login is accepted (WAIT); 0: do not wait.
        wait_replicas: u32 = "0" [range(0, 10, "replicas")],
    }
}

/// One Redis or Sentinel address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// The CA certificates that check the servers' (with `tls = yes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaSources {
    /// `ca_file`: a PEM file.
    pub file: Option<PathBuf>,
    /// `ca_path`: a directory of PEM files.
    pub path: Option<PathBuf>,
}

/// An operation's deadline on the store, in `timeout_ms`: room for a dead pooled
/// connection or Sentinel, then a new connection's exchanges; also the budget
/// of one request's operations together (its module calls share it). README states it.
pub const ROUNDS: u32 = 3;

/// The checked `redis { }` section.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Redis itself, or (with `sentinel_service`) the Sentinels, in the order tried.
    pub servers: Vec<Address>,
    pub sentinel_service: Option<String>,
    pub username: Option<String>,
    /// A secret.
    pub password: Option<String>,
    /// A secret.
    pub sentinel_password: Option<String>,
    pub database: u32,
    /// Every key is `{prefix}:...`.
    pub prefix: String,
    pub tls: bool,
    /// `ca_file` and `ca_path`, boxed: rarely set, and the store's choice stays small.
    pub ca: Option<Box<CaSources>>,
    pub timeout: Duration,
    pub wait_replicas: u32,
}

impl RedisSettings {
    /// [`ROUNDS`] x `timeout_ms`: the deadline of one operation on the store, and
    /// what one request may wait on it in all (README, "What happens when
    /// Redis fails").
    pub fn budget(&self) -> Duration {
        self.timeout * ROUNDS
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("servers", &self.servers)
            .field("sentinel_service", &self.sentinel_service)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sentinel_password", &self.sentinel_password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("prefix", &self.prefix)
            .field("tls", &self.tls)
            .field("ca", &self.ca)
            .field("timeout", &self.timeout)
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

fn set(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

/// `host:port`, `[v6]:port`, or a bare host (port `default_port`).
pub(super) fn address(item: &str, text: &str, default_port: u16) -> Result<Address, ConfigError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| invalid(item, format!("\"{text}\": no closing ]")))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (text, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse().ok().filter(|p| *p > 0).ok_or_else(|| invalid(item, format!("\"{text}\": bad port")))?,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
        return Err(invalid(item, format!("\"{text}\" is not host:port")));
    }
    Ok(Address { host: host.to_string(), port })
}

/// Checks the section (read only with `state_store = redis`).
pub fn redis_settings(raw: &RawRedis) -> Result<RedisSettings, ConfigError> {
    let sentinel_service = set(&raw.sentinel_service);
    let default_port = if sentinel_service.is_some() { 26379 } else { 6379 };
    let text = set(&raw.server).ok_or_else(|| invalid("redis.server", "the Redis server's host:port is required"))?;
    let servers = text
        .split([',', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(|s| address("redis.server", s, default_port))
        .collect::<Result<Vec<_>, _>>()?;
    if servers.len() > 1 && sentinel_service.is_none() {
        return Err(invalid(
            "redis.server",
            "one Redis server without sentinel_service (a list names the Sentinels of a monitored primary)",
        ));
    }
    let prefix = set(&raw.prefix).unwrap_or_else(|| "mfa".to_string());
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("redis.prefix", "must not contain spaces or control characters"));
    }
    let ca_file = set(&raw.ca_file).map(PathBuf::from);
    if ca_file.is_some() && !raw.tls {
        return Err(invalid("redis.ca_file", "is used only with tls = yes"));
    }
    let ca_path = set(&raw.ca_path).map(PathBuf::from);
    if ca_path.is_some() && !raw.tls {
        return Err(invalid("redis.ca_path", "is used only with tls = yes"));
    }
    Ok(RedisSettings {
        servers,
        sentinel_service,
        username: set(&raw.username),
        password: raw.password.clone().filter(|p| !p.is_empty()),
        sentinel_password: raw.sentinel_password.clone().filter(|p| !p.is_empty()),
        database: raw.database,
        prefix,
        tls: raw.tls,
        ca: (ca_file.is_some() || ca_path.is_some()).then(|| Box::new(CaSources { file: ca_file, path: ca_path })),
        timeout: Duration::from_millis(u64::from(raw.timeout_ms)),
        wait_replicas: raw.wait_replicas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(server: &str) -> RawRedis {
        RawRedis { server: Some(server.to_string()), ..RawRedis::default() }
    }

    #[test]
    fn addresses() {
        let s = redis_settings(&raw("10.0.0.5:6380")).unwrap();
        assert_eq!(s.servers, vec![Address { host: "10.0.0.5".into(), port: 6380 }]);
        assert_eq!(s.prefix, "mfa");
        assert_eq!(s.timeout, Duration::from_millis(500));
        assert_eq!(redis_settings(&raw("redis.example")).unwrap().servers[0].port, 6379);
        assert_eq!(redis_settings(&raw("[::1]:7000")).unwrap().servers[0], Address { host: "::1".into(), port: 7000 });
        let sentinels = RawRedis { sentinel_service: Some("mfa".into()), ..raw("a:1, b , c:3") };
        let s = redis_settings(&sentinels).unwrap();
        let ports: Vec<u16> = s.servers.iter().map(|a| a.port).collect();
        assert_eq!(ports, vec![1, 26379, 3]);
    }

    #[test]
    fn refusals_name_the_item() {
        for (bad, item) in [
            (raw("a:1 b:2"), "redis.server"),
            (raw("host:0"), "redis.server"),
            (raw("host:x"), "redis.server"),
            (raw("redis://host"), "redis.server"),
            (raw(" "), "redis.server"),
            (RawRedis { prefix: Some("a b".into()), ..raw("h") }, "redis.prefix"),
            (RawRedis { ca_file: Some("/ca.pem".into()), ..raw("h") }, "redis.ca_file"),
            (RawRedis { ca_path: Some("/etc/ssl/certs".into()), ..raw("h") }, "redis.ca_path"),
        ] {
            assert_eq!(redis_settings(&bad).unwrap_err().item, item, "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_passwords() {
        let s = RawRedis { password: Some("hunter2".into()), sentinel_password: Some("s3cret".into()), ..raw("h") };
        let text = format!("{:?}", redis_settings(&s).unwrap());
        assert!(!text.contains("hunter2") && !text.contains("s3cret"), "{text}");
    }
}

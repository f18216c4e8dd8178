//! Connections to the Redis primary: found directly or through the Sentinels,
//! with AUTH and TLS, kept in a small idle pool so that a login costs no new
//! connection. Each operation on the store has one deadline, [`ROUNDS`] x
//! `timeout_ms` from its start, that every step shares (connect, the Sentinel
//! query, ROLE, SCRIPT LOAD, the exchange): each waits at most `timeout_ms`
//! and never past the deadline, so that no FreeRADIUS thread waits longer on
//! a Redis (or a Sentinel) that accepts connections and never answers.
//!
//! The Sentinel lookup is done here rather than by the crate's Sentinel client,
//! whose connections to the Sentinels take no timeout: a Sentinel host that is
//! down must cost a request `timeout_ms`, never the system's TCP timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{Client, Connection, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, RedisError};

use super::scripts::Scripts;
use crate::config::{Address, RedisSettings};

/// Idle connections kept at most; more are closed when handed back.
const MAX_IDLE: usize = 64;

/// An operation's deadline, in `timeout_ms`: room for a dead pooled
/// connection or Sentinel, then a new connection's exchanges. README states it.
pub(super) const ROUNDS: u32 = 3;

/// Which kind of node a connection goes to: its credentials differ.
#[derive(Clone, Copy)]
enum Node {
    Data,
    Sentinel,
}

pub(super) struct Connector {
    settings: RedisSettings,
    /// The PEM of `ca_file`, read at start-up.
    ca: Option<Vec<u8>>,
    idle: Mutex<Vec<Armed>>,
}

/// A failure, in words for the log (never a credential).
pub(super) fn words(e: &RedisError) -> String {
    if e.is_timeout() {
        // A read timeout reads "Resource temporarily unavailable" otherwise.
        return format!("no answer within timeout_ms ({e})");
    }
    e.to_string()
}

impl Connector {
    pub fn new(settings: RedisSettings, ca: Option<Vec<u8>>) -> Connector {
        Connector { settings, ca, idle: Mutex::new(Vec::new()) }
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// The deadline of an operation starting now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.settings.timeout * ROUNDS
    }

    /// Runs `exchange` on a connection to the primary, before a deadline of its own.
    pub fn run<T>(&self, exchange: impl Fn(&mut Connection) -> Result<T, RedisError>) -> Result<T, String> {
        self.run_until(self.deadline(), exchange)
    }

    /// Runs `exchange` on a connection to the primary, before `deadline`. A
    /// pooled connection that fails (closed by the server, its node no longer
    /// the primary after a failover, or gone silent) is dropped and the exchange
    /// tried once more on a new one, in the time left. One that timed out takes
    /// the other idle ones with it: they lead to the same silent node, and each
    /// would cost a login its wait.
    pub fn run_until<T>(
        &self,
        deadline: Instant,
        exchange: impl Fn(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, String> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(mut con) = pooled {
            match self.rearm(&mut con, deadline).and_then(|()| exchange(&mut con.con)) {
                Ok(answer) => {
                    self.give_back(con);
                    return Ok(answer);
                }
                Err(e) if !worth_a_new_connection(&e) => return Err(words(&e)),
                Err(e) => {
                    // Dropped: a new connection below.
                    if e.is_timeout() {
                        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    }
                }
            }
        }
        let mut con = self.connect(deadline)?;
        let answer = self.rearm(&mut con, deadline).and_then(|()| exchange(&mut con.con)).map_err(|e| words(&e))?;
        self.give_back(con);
        Ok(answer)
    }

    /// Bounds the next exchange on `con` by `timeout_ms` and the deadline, or
    /// fails when the deadline has passed.
    fn arm(&self, con: &Connection, deadline: Instant) -> Result<(), RedisError> {
        let step = self.step(deadline)?;
        con.set_read_timeout(Some(step))?;
        con.set_write_timeout(Some(step))
    }

    /// As [`Connector::arm`] for a connection to the primary: no system call when
    /// the step is the one already set (the usual case, a full `timeout_ms`).
    fn rearm(&self, armed: &mut Armed, deadline: Instant) -> Result<(), RedisError> {
        let step = self.step(deadline)?;
        if armed.timeout != Some(step) {
            armed.con.set_read_timeout(Some(step))?;
            armed.con.set_write_timeout(Some(step))?;
            armed.timeout = Some(step);
        }
        Ok(())
    }

    /// What the next step may wait: `timeout_ms`, or less when the deadline is nearer.
    fn step(&self, deadline: Instant) -> Result<Duration, RedisError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            let late = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the operation's deadline, {ROUNDS} x timeout_ms, has passed"),
            );
            return Err(RedisError::from(late));
        }
        Ok(left.min(self.settings.timeout))
    }

    fn give_back(&self, con: Armed) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(con);
        }
    }

    /// A new connection to the primary, with the scripts loaded.
    fn connect(&self, deadline: Instant) -> Result<Armed, String> {
        let con = match &self.settings.sentinel_service {
            None => self.open(&self.settings.servers[0], Node::Data, deadline).map_err(|e| words(&e))?,
            Some(service) => self.primary_from_sentinels(service, deadline)?,
        };
        let mut load = redis::pipe();
        for text in Scripts::texts() {
            load.cmd("SCRIPT").arg("LOAD").arg(text).ignore();
        }
        let mut con = Armed { con, timeout: None };
        self.rearm(&mut con, deadline).and_then(|()| load.exec(&mut con.con)).map_err(|e| words(&e))?;
        Ok(con)
    }

    /// Asks each Sentinel in turn for the primary of `service`, and takes the
    /// first answer whose node says it is the primary (during a failover a
    /// Sentinel may still name the old one).
    fn primary_from_sentinels(&self, service: &str, deadline: Instant) -> Result<Connection, String> {
        let mut last = String::from("no Sentinel answered");
        for sentinel in &self.settings.servers {
            let asked = self.open(sentinel, Node::Sentinel, deadline).and_then(|mut con| {
                self.arm(&con, deadline)?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(service)
                    .query::<Option<(String, u16)>>(&mut con)
            });
            let (host, port) = match asked {
                Ok(Some(found)) => found,
                Ok(None) => {
                    last = format!("Sentinel {}:{} does not know \"{service}\"", sentinel.host, sentinel.port);
                    continue;
                }
                Err(e) => {
                    last = format!("Sentinel {}:{}: {}", sentinel.host, sentinel.port, words(&e));
                    continue;
                }
            };
            let primary = Address { host, port };
            let checked = self.open(&primary, Node::Data, deadline).and_then(|mut con| {
                self.arm(&con, deadline)?;
                let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut con)?;
                Ok((con, matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")))
            });
            match checked {
                Ok((con, true)) => return Ok(con),
                Ok((_, false)) => last = format!("{}:{} is not the primary (yet)", primary.host, primary.port),
                Err(e) => last = format!("primary {}:{}: {}", primary.host, primary.port, words(&e)),
            }
        }
        Err(last)
    }

    fn open(&self, address: &Address, node: Node, deadline: Instant) -> Result<Connection, RedisError> {
        let s = &self.settings;
        let addr = if s.tls {
            ConnectionAddr::TcpTls { host: address.host.clone(), port: address.port, insecure: false, tls_params: None }
        } else {
            ConnectionAddr::Tcp(address.host.clone(), address.port)
        };
        let redis = match node {
            Node::Data => RedisConnectionInfo {
                db: i64::from(s.database),
                username: s.username.clone(),
                password: s.password.clone(),
                ..RedisConnectionInfo::default()
            },
            Node::Sentinel => {
                RedisConnectionInfo { password: s.sentinel_password.clone(), ..RedisConnectionInfo::default() }
            }
        };
        let info = ConnectionInfo { addr, redis };
        let client = match &self.ca {
            Some(pem) => {
                Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) })?
            }
            None => Client::open(info)?,
        };
        // Connecting, TLS and AUTH share one step; each later exchange arms its own.
        client.get_connection_with_timeout(self.step(deadline)?)
    }
}

/// A connection to the primary with the read and write timeout last set on it.
struct Armed {
    con: Connection,
    timeout: Option<Duration>,
}

/// Errors after which the same exchange may succeed on a new connection: the
/// connection broke, the node is no longer the primary, or it lost our scripts.
fn worth_a_new_connection(e: &RedisError) -> bool {
    use redis::ErrorKind;
    e.is_io_error()
        || e.is_connection_dropped()
        || matches!(e.kind(), ErrorKind::ReadOnly | ErrorKind::NoScriptError | ErrorKind::BusyLoadingError)
}

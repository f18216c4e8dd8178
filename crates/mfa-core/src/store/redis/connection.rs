//! Connections to the Redis primary: found directly or through the Sentinels,
//! with AUTH and TLS, every exchange bounded by `timeout_ms`, kept in a small
//! idle pool so that a login costs no new connection.
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
    idle: Mutex<Vec<Connection>>,
}

/// A failure, in words for the log (never a credential).
pub(super) fn words(e: &RedisError) -> String {
    e.to_string()
}

impl Connector {
    pub fn new(settings: RedisSettings, ca: Option<Vec<u8>>) -> Connector {
        Connector { settings, ca, idle: Mutex::new(Vec::new()) }
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// Runs `exchange` on a connection to the primary. A pooled connection that
    /// fails (closed by the server, or its node no longer the primary after a
    /// failover) is dropped and the exchange tried once more on a new one.
    pub fn run<T>(&self, exchange: impl Fn(&mut Connection) -> Result<T, RedisError>) -> Result<T, String> {
        let deadline = Instant::now() + self.settings.timeout * 4;
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(mut con) = pooled {
            match exchange(&mut con) {
                Ok(answer) => {
                    self.give_back(con);
                    return Ok(answer);
                }
                Err(e) if !worth_a_new_connection(&e) => return Err(words(&e)),
                Err(_) => {} // dropped: a new connection below
            }
        }
        let mut con = self.connect(deadline)?;
        let answer = exchange(&mut con).map_err(|e| words(&e))?;
        self.give_back(con);
        Ok(answer)
    }

    fn give_back(&self, con: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(con);
        }
    }

    /// A new connection to the primary, with the scripts loaded.
    fn connect(&self, deadline: Instant) -> Result<Connection, String> {
        let mut con = match &self.settings.sentinel_service {
            None => self.open(&self.settings.servers[0], Node::Data, deadline).map_err(|e| words(&e))?,
            Some(service) => self.primary_from_sentinels(service, deadline)?,
        };
        let mut load = redis::pipe();
        for text in Scripts::texts() {
            load.cmd("SCRIPT").arg("LOAD").arg(text).ignore();
        }
        load.exec(&mut con).map_err(|e| words(&e))?;
        Ok(con)
    }

    /// Asks each Sentinel in turn for the primary of `service`, and takes the
    /// first answer whose node says it is the primary (during a failover a
    /// Sentinel may still name the old one).
    fn primary_from_sentinels(&self, service: &str, deadline: Instant) -> Result<Connection, String> {
        let mut last = String::from("no Sentinel answered");
        for sentinel in &self.settings.servers {
            let asked = self.open(sentinel, Node::Sentinel, deadline).and_then(|mut con| {
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
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "no time left")));
        }
        let con = client.get_connection_with_timeout(left.min(s.timeout).max(Duration::from_millis(1)))?;
        con.set_read_timeout(Some(s.timeout))?;
        con.set_write_timeout(Some(s.timeout))?;
        Ok(con)
    }
}

/// Errors after which the same exchange may succeed on a new connection: the
/// connection broke, the node is no longer the primary, or it lost our scripts.
fn worth_a_new_connection(e: &RedisError) -> bool {
    use redis::ErrorKind;
    e.is_io_error()
        || e.is_connection_dropped()
        || matches!(e.kind(), ErrorKind::ReadOnly | ErrorKind::NoScriptError | ErrorKind::BusyLoadingError)
}

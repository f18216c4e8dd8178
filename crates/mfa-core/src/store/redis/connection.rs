//! Connections to the Redis primary: found directly or through the Sentinels,
//! with AUTH and TLS, kept in a small idle pool so that a login costs no new
//! connection. Each operation on the store has one deadline, [`ROUNDS`] x
//! `timeout_ms` from its start, that every step shares (connect, the Sentinel
//! query, ROLE, SCRIPT LOAD, the exchange): each waits at most `timeout_ms`
//! and never past the deadline, so that no FreeRADIUS thread waits longer on
//! a Redis (or a Sentinel) that accepts connections and never answers. The
//! operations of one request (its module calls) share a budget of the same length
//! (store::call_budget), so that a call's waits on the store add up to no more.
//!
//! The Sentinel lookup is done here rather than by the crate's Sentinel client,
//! whose connections to the Sentinels take no timeout: a Sentinel host that is
//! down must cost a request `timeout_ms`, never the system's TCP timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{Client, Connection, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, RedisError};

use super::scripts::Scripts;
use crate::config::redis::ROUNDS;
use crate::config::{Address, RedisSettings};
use crate::stats::{Call, Counters};
use crate::store::call_budget;

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
    idle: Mutex<Vec<Armed>>,
    /// With `stats { file }`: each operation timed, a failed one counted.
    pub(super) counters: Option<&'static Counters>,
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
        Connector { settings, ca, idle: Mutex::new(Vec::new()), counters: None }
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// The deadline of an operation starting now: its own, or the end of what
    /// is left of the request's budget (store::call_budget) when that is nearer.
    pub fn deadline(&self) -> Instant {
        let own = self.settings.budget();
        Instant::now() + call_budget::left().map_or(own, |left| left.min(own))
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
        let start = Instant::now();
        let answer = self.try_until(deadline, exchange);
        let took = start.elapsed();
        call_budget::spend(took);
        if let Some(counters) = self.counters {
            counters.observe(Call::Redis, took, answer.is_err());
        }
        answer
    }

    fn try_until<T>(
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
            let spent = call_budget::left().is_some_and(|l| l < Duration::from_millis(1));
            let why = if spent {
                format!("the request's time on the store is spent ({ROUNDS} x timeout_ms for all of its operations)")
            } else {
                format!(
                    "the deadline has passed ({ROUNDS} x timeout_ms for an operation, and for all of one request's)"
                )
            };
            return Err(RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, why)));
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

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::store::call_budget::CallBudget;

    /// A server that answers every RESP command "+OK", each PING `delay` late (the
    /// scripts a new connection loads at once), and counts the PINGs.
    fn slow_server(delay: Duration) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counted = counted.clone();
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().unwrap();
                    let mut lines = BufReader::new(stream);
                    let mut line = String::new();
                    // A command is "*N", then N pairs of "$len" and the argument.
                    while lines.read_line(&mut line).unwrap_or(0) > 0 {
                        let parts: usize = line.trim_start_matches('*').trim().parse().unwrap_or(0);
                        let mut words = vec![];
                        for _ in 0..parts {
                            line.clear();
                            lines.read_line(&mut line).unwrap_or(0);
                            let len: usize = line.trim_start_matches('$').trim().parse().unwrap_or(0);
                            let mut word = vec![0; len + 2];
                            if lines.read_exact(&mut word).is_err() {
                                return;
                            }
                            words.push(String::from_utf8_lossy(&word[..len]).into_owned());
                        }
                        if words.first().is_some_and(|w| w == "PING") {
                            counted.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(delay);
                        }
                        if out.write_all(b"+OK\r\n").is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        });
        (port, seen)
    }

    fn connector(port: u16, timeout: Duration) -> Connector {
        let settings = RedisSettings {
            servers: vec![Address { host: "127.0.0.1".into(), port }],
            sentinel_service: None,
            username: None,
            password: None,
            sentinel_password: None,
            database: 0,
            prefix: "t".into(),
            tls: false,
            ca: None,
            timeout,
            wait_replicas: 0,
        };
        Connector::new(settings, None)
    }

    fn ping(con: &mut Connection) -> Result<String, RedisError> {
        redis::cmd("PING").query(con)
    }

    /// Each exchange answers within timeout_ms, so every operation alone
    /// succeeds; within one module call they share 3 x timeout_ms, and once it
    /// is spent the next operation fails at once, without asking the server.
    #[test]
    fn the_operations_of_one_call_share_its_budget() {
        let timeout = Duration::from_millis(200);
        let (port, seen) = slow_server(Duration::from_millis(120));
        let store = connector(port, timeout);
        for _ in 0..8 {
            assert_eq!(store.run(ping).unwrap(), "OK", "outside a call, no budget but each operation's own");
        }

        let _call = CallBudget::enter(Some(timeout * ROUNDS));
        let mut answered = 0;
        let refusal = loop {
            match store.run(ping) {
                Ok(_) => answered += 1,
                Err(e) => break e,
            }
            assert!(answered < 8, "the budget never ran out");
        };
        // 600 ms at 120 ms an exchange: four answered; the fifth hits the deadline.
        assert!((3..=5).contains(&answered), "{answered} answered before: {refusal}");
        let asked = seen.load(Ordering::SeqCst);
        assert!(store.run(ping).unwrap_err().contains("the request's time on the store is spent"));
        assert_eq!(seen.load(Ordering::SeqCst), asked, "a spent budget asks the server nothing");
    }
}

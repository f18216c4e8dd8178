//! Real Redis servers and Sentinels for the tests of the shared state store,
//! each on a free loopback port with a directory of its own.
//!
//! The binaries come from `RLM_MFA_REDIS_BIN` (a directory holding
//! redis-server, redis-sentinel and redis-cli) or .deps/redis/bin, where
//! scripts/redis.sh unpacks Debian's. Without them the tests say so and pass
//! trivially, unless `RLM_MFA_REQUIRE_REDIS=1` (scripts/test.sh sets it).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{repo, tail, unique_dir};

/// The directory of redis-server, redis-sentinel and redis-cli, or None (and a note).
pub fn redis_bin() -> Option<PathBuf> {
    let dir =
        std::env::var_os("RLM_MFA_REDIS_BIN").map(PathBuf::from).unwrap_or_else(|| repo().join(".deps/redis/bin"));
    if dir.join("redis-server").is_file() {
        return Some(dir);
    }
    if std::env::var("RLM_MFA_REQUIRE_REDIS").as_deref() == Ok("1") {
        panic!("no redis-server in {}: run scripts/redis.sh", dir.display());
    }
    eprintln!("note: no redis-server in {}; Redis test skipped (run scripts/redis.sh)", dir.display());
    None
}

/// Skips the test (returns) when Redis or the module is missing.
#[macro_export]
macro_rules! require_redis {
    () => {
        match (common::module_dir(), common::redis::redis_bin()) {
            (Some(module), Some(redis)) => (module, redis),
            _ => return,
        }
    };
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One redis-server or redis-sentinel process.
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    /// Extra lines of its configuration file.
    config: String,
    sentinel: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// A Redis server on a free port, persisting nothing.
    pub fn start(bin: &Path) -> RedisServer {
        RedisServer::start_with(bin, "")
    }

    /// A Redis server with more configuration lines (`replicaof`, `requirepass`, ACL users...).
    pub fn start_with(bin: &Path, config: &str) -> RedisServer {
        let mut server = RedisServer {
            port: free_tcp_port(),
            dir: unique_dir("redis"),
            bin: bin.to_path_buf(),
            config: config.to_string(),
            sentinel: false,
            child: None,
        };
        server.spawn();
        server
    }

    /// A Sentinel watching `primary_port` as `service`, with quorum 2 and quick failure detection.
    pub fn sentinel(bin: &Path, service: &str, primary_port: u16) -> RedisServer {
        RedisServer::sentinel_with(bin, service, primary_port, "")
    }

    /// A Sentinel as [`RedisServer::sentinel`], with more lines (`requirepass ...`).
    pub fn sentinel_with(bin: &Path, service: &str, primary_port: u16, extra: &str) -> RedisServer {
        let config = format!(
            "sentinel monitor {service} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {service} 2000\n\
             sentinel failover-timeout {service} 10000\n\
             sentinel parallel-syncs {service} 1\n{extra}"
        );
        let mut server = RedisServer {
            port: free_tcp_port(),
            dir: unique_dir("sentinel"),
            bin: bin.to_path_buf(),
            config,
            sentinel: true,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let conf = self.dir.join("redis.conf");
        let base = format!(
            "port {}\nbind 127.0.0.1\ndir {}\nlogfile {}\nsave \"\"\nappendonly no\n",
            self.port,
            self.dir.display(),
            self.dir.join("redis.log").display()
        );
        // A Sentinel rewrites its file; a server is given the same form.
        // Replicas sync at once (no diskless-sync delay), so that WAIT is answered from the start.
        let sync = if self.sentinel { "" } else { "repl-diskless-sync-delay 0\n" };
        fs::write(&conf, format!("{base}{sync}{}", self.config)).unwrap();
        let program = if self.sentinel { "redis-sentinel" } else { "redis-server" };
        let child = Command::new(self.bin.join(program))
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        self.child = Some(child);
        let started = Instant::now();
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{program} on port {} did not start:\n{}",
                self.port,
                tail(&fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default(), 30)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// redis-cli's answer to one command (raw output), against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(self.bin.join("redis-cli"));
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--no-auth-warning"]);
        if let Some(password) = self.config.lines().find_map(|l| l.strip_prefix("requirepass ")) {
            command.args(["-a", password.trim()]);
        }
        // `user NAME on >PASSWORD ...` when the default user is off: the first such user.
        if self.config.contains("user default off") {
            let user = self.config.lines().filter_map(|l| l.strip_prefix("user ")).find(|l| !l.starts_with("default"));
            if let Some(words) = user.map(|l| l.split_whitespace().collect::<Vec<_>>()) {
                let password = words.iter().find_map(|w| w.strip_prefix('>')).unwrap_or_default();
                command.args(["--user", words[0], "--pass", password]);
            }
        }
        let out = command.args(args).output().expect("cannot run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server (SIGKILL): what an outage looks like to its clients.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it still accepts connections (the kernel
    /// completes them) but answers nothing, as a hung Redis or host does.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("a running server").id().to_string();
        let status = Command::new("kill").args([which, &pid]).status().expect("cannot run kill");
        assert!(status.success(), "kill {which} {pid}");
    }

    /// Starts it again on the same port, empty (it persists nothing).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `host:port` for `redis { server = ... }`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

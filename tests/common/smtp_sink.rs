//! A real SMTP server on loopback for the tests of `smtp { }`: aiosmtpd
//! (tests/smtp/sink.py, run by the venv scripts/smtp.sh installs) started per
//! test on a free port, keeping each message it accepts as a file; stopped on Drop.
//!
//! Pull it into a test file with `#[path = "common/smtp_sink.rs"] mod smtp_sink;`.
//! Without the venv the tests say so and pass trivially, unless
//! `RLM_MFA_REQUIRE_SMTP=1`, where they fail. `RLM_MFA_SMTP_VENV` names another venv.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, or None (and a note) when the sink cannot run here.
pub fn venv_python() -> Option<PathBuf> {
    crate::common::venv::python("smtp", "SMTP sink")
}

/// How the sink is started.
#[derive(Default)]
pub struct SinkOptions<'a> {
    /// Offer and require STARTTLS with this certificate and key (PEM).
    pub tls: Option<(&'a Path, &'a Path)>,
    /// TLS from the first byte instead of STARTTLS.
    pub implicit_tls: bool,
    /// Require AUTH with this user and password.
    pub login: Option<(&'a str, &'a str)>,
}

/// A received message: the envelope and the message as sent.
#[derive(Debug, Clone)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_to: String,
    /// Headers and body, as the client sent them.
    pub text: String,
}

impl Mail {
    /// The value of a header (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.text.split("\r\n\r\n").next().unwrap_or("");
        let mut lines = head.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    let mut value = v.trim().to_string();
                    while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                        value.push(' ');
                        value.push_str(next.trim());
                        lines.next();
                    }
                    return Some(value);
                }
            }
        }
        None
    }

    pub fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, body)| body)
    }
}

pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn unique_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = repo().join("target/integration").join(format!(
        "smtp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

impl SmtpSink {
    /// Starts a sink, or None when there is no venv (the test then returns).
    pub fn start(options: &SinkOptions<'_>) -> Option<SmtpSink> {
        let python = venv_python()?;
        let dir = unique_dir();
        let mut command = Command::new(python);
        command.arg(repo().join("tests/smtp/sink.py")).arg(dir.join("mail"));
        if let Some((cert, key)) = options.tls {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if options.implicit_tls {
            command.arg("--implicit-tls");
        }
        if let Some((user, password)) = options.login {
            command.arg("--login").arg(format!("{user}:{password}"));
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(dir.join("sink.log")).unwrap())
            .spawn()
            .expect("cannot start tests/smtp/sink.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(port) = line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SMTP sink did not start: {line:?}\n{}", fs::read_to_string(dir.join("sink.log")).unwrap());
        };
        Some(SmtpSink { child, port, dir })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = fs::read_dir(self.dir.join("mail"))
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|x| x == "eml"));
        names.sort();
        names.iter().map(|p| parse(&fs::read_to_string(p).unwrap())).collect()
    }

    /// Waits up to `limit` for `count` messages (the server writes a message
    /// before it answers, so this seldom waits at all).
    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<Mail> {
        let end = Instant::now() + limit;
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() >= end {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn parse(file: &str) -> Mail {
    let (from_line, rest) = file.split_once("\r\n").unwrap();
    let (to_line, text) = rest.split_once("\r\n").unwrap();
    Mail {
        mail_from: from_line.trim_start_matches("X-Mail-From: ").to_string(),
        rcpt_to: to_line.trim_start_matches("X-Rcpt-To: ").to_string(),
        text: text.to_string(),
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing its standard input ends it; kill it if it lingers.
        drop(self.child.stdin.take());
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

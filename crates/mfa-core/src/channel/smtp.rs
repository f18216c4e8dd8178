//! Sending a code by e-mail to a mail server over SMTP (lettre's blocking
//! client): STARTTLS or TLS verified against the system's store or the
//! configured CAs, an optional login, one message a connection.
//!
//! A send is bounded as a whole by the configured timeout, like the HTTP
//! gateway's: the session runs on a thread of its own, each step bounded by the
//! time left, and the caller (a FreeRADIUS thread) waits no longer than the
//! timeout even for a server that answers a byte at a time. Nothing sent (the
//! message, the password) and nothing the server says beyond its reply code
//! reaches an error or a log line.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, SmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message};

use crate::channel::gateway::{SendError, Sender};
use crate::channel::http;
use crate::channel::setup::SetupError;
use crate::channel::tls;
pub use crate::config::SmtpTls;
use crate::text::template::render;

/// Where and how to send.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The login and its password (a secret).
    pub login: Option<(String, String)>,
    /// `address` or `Name <address>`.
    pub from: String,
    /// With {code}, {correlation} and {user}.
    pub subject: String,
    /// Bound for one whole send.
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("login", &self.login.as_ref().map(|(user, _)| (user, "<redacted>")))
            .field("from", &self.from)
            .field("subject", &self.subject)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Sessions that may still run past their caller's timeout (a server that
/// trickles its answers) before new sends are refused at once: a bad server
/// cannot pile up threads.
const MAX_RUNNING: usize = 64;

/// Sends e-mail through one mail server.
pub struct SmtpSender {
    session: Arc<Session>,
    running: Arc<AtomicUsize>,
}

/// What a session needs, shared with the thread that runs it.
struct Session {
    cfg: SmtpConfig,
    from: Mailbox,
    tls: Option<TlsParameters>,
    hello: ClientId,
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender").field("cfg", &self.session.cfg).finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// Checks the configuration and loads the CAs; the error names the item.
    pub fn new(cfg: SmtpConfig) -> Result<SmtpSender, SetupError> {
        if cfg.timeout.is_zero() {
            return Err(SetupError::new("timeout", "timeout must be more than 0"));
        }
        let from: Mailbox =
            cfg.from.parse().map_err(|e| SetupError::new("from", format!("from is not an e-mail address: {e}")))?;
        let tls = match cfg.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Tls => Some(tls_parameters(&cfg)?),
        };
        let session = Session { cfg, from, tls, hello: ClientId::default() };
        Ok(SmtpSender { session: Arc::new(session), running: Arc::new(AtomicUsize::new(0)) })
    }

    pub fn config(&self) -> &SmtpConfig {
        &self.session.cfg
    }
}

/// rustls (the ring provider lettre is built with) verifying against the
/// configured CAs, else the system's store: never a list compiled in.
fn tls_parameters(cfg: &SmtpConfig) -> Result<TlsParameters, SetupError> {
    let roots = match tls::configured_certificates(cfg.ca_file.as_deref(), cfg.ca_path.as_deref())? {
        Some(certs) => certs,
        None => tls::system_certificates().map_err(|e| SetupError::new("server", format!("server: {e}")))?,
    };
    let mut builder = TlsParameters::builder(cfg.host.clone()).certificate_store(CertificateStore::None);
    for der in roots {
        let cert = Certificate::from_der(der.to_vec())
            .map_err(|e| SetupError::new("ca_file", format!("a CA certificate cannot be used: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| SetupError::new("server", format!("TLS cannot be set up: {e}")))
}

/// Counts a running session; uncounted when dropped, even by a panic.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Sender for SmtpSender {
    fn send(&self, user: &str, destination: &str, message: &str) -> Result<(), SendError> {
        self.send_rendered(user, destination, message, &[("user", user)])
    }

    fn send_rendered(
        &self,
        _user: &str,
        destination: &str,
        message: &str,
        values: &[(&str, &str)],
    ) -> Result<(), SendError> {
        let cfg = &self.session.cfg;
        let deadline = Instant::now() + cfg.timeout;
        let to: Address = destination
            .trim()
            .parse()
            .map_err(|_| SendError::Template("the destination is not an e-mail address".into()))?;
        let letter = Message::builder()
            .from(self.session.from.clone())
            .to(Mailbox::new(None, to))
            .subject(render(&cfg.subject, values))
            .header(ContentType::TEXT_PLAIN)
            .body(message.to_owned())
            .map_err(|_| SendError::Template("the message cannot be built".into()))?;

        if self.running.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING {
            self.running.fetch_sub(1, Ordering::SeqCst);
            return Err(SendError::Unreachable("too many earlier sends to it have not ended".into()));
        }
        let running = Running(Arc::clone(&self.running));
        let session = Arc::clone(&self.session);
        let (done, result) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("rlm_mfa smtp".into()).spawn(move || {
            let _running = running;
            let _ = done.send(session.deliver(&letter, deadline));
        });
        if spawned.is_err() {
            return Err(SendError::Unreachable("no thread to send with".into()));
        }
        match result.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(sent) => sent,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(SendError::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(SendError::Unreachable("the send failed".into())),
        }
    }
}

impl Session {
    /// One SMTP session: greeting, STARTTLS, login, the message, QUIT. Each step
    /// is bounded by the time left before `deadline`.
    fn deliver(&self, letter: &Message, deadline: Instant) -> Result<(), SendError> {
        let cfg = &self.cfg;
        let left = || {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(SendError::Timeout)
            } else {
                Ok(Some(left))
            }
        };
        let wrapped = if cfg.tls == SmtpTls::Tls { self.tls.as_ref() } else { None };
        let mut conn = SmtpConnection::connect((cfg.host.as_str(), cfg.port), left()?, &self.hello, wrapped, None)
            .map_err(|e| judge("the connection", &e))?;
        if let (SmtpTls::StartTls, Some(tls)) = (cfg.tls, &self.tls) {
            conn.set_timeout(left()?).map_err(|e| io_error(&e))?;
            if !conn.can_starttls() {
                conn.abort();
                return Err(SendError::Refused("STARTTLS: it does not offer it".into()));
            }
            conn.starttls(tls, &self.hello).map_err(|e| judge("STARTTLS", &e))?;
        }
        if let Some((user, password)) = &cfg.login {
            conn.set_timeout(left()?).map_err(|e| io_error(&e))?;
            let credentials = Credentials::new(user.clone(), password.clone());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .map_err(|e| judge(&format!("the login of \"{user}\""), &e))?;
        }
        conn.set_timeout(left()?).map_err(|e| io_error(&e))?;
        conn.send(letter.envelope(), &letter.formatted()).map_err(|e| judge("the message", &e))?;
        // The message is accepted: how QUIT goes does not matter.
        let _ = conn.set_timeout(left().unwrap_or(Some(Duration::from_millis(1))));
        let _ = conn.quit();
        Ok(())
    }
}

fn io_error(e: &std::io::Error) -> SendError {
    match http::io_failure(e) {
        http::Failure::Timeout => SendError::Timeout,
        http::Failure::Unreachable(why) => SendError::Unreachable(why),
    }
}

/// A lettre error in plain words: the step and the server's reply code, or the
/// transport's failure; never the server's text, nor lettre's own for what the
/// server said.
fn judge(step: &str, e: &lettre::transport::smtp::Error) -> SendError {
    if let Some(code) = e.status() {
        return SendError::Refused(format!("{step} (reply {code})"));
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return io_error(io);
        }
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return SendError::Unreachable(format!("TLS failed: {tls}"));
        }
        source = inner.source();
    }
    if e.is_tls() {
        SendError::Unreachable("TLS failed".into())
    } else if e.is_client() {
        // lettre's own words about what it cannot do ("No compatible authentication
        // mechanism was found"): fixed texts, nothing sent or received.
        SendError::Unreachable(format!("{step}: {e}"))
    } else {
        SendError::Unreachable(format!("{step}: its answer is not valid SMTP"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};

    const CODE: &str = "493817";

    fn config(port: u16, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls,
            login: None,
            from: "rlm_mfa <mfa@example.com>".into(),
            subject: "Code for {user} ({correlation})".into(),
            timeout: Duration::from_millis(1500),
            ca_file: None,
            ca_path: None,
        }
    }

    /// A one-connection SMTP server speaking from a script: for each line the
    /// client sends, the next answer; returns what the client sent.
    fn scripted(greeting: &'static str, answers: &'static [&'static str]) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            talk(stream, greeting, answers)
        });
        (port, handle)
    }

    fn talk(mut stream: TcpStream, greeting: &str, answers: &[&str]) -> String {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut heard = String::new();
        stream.write_all(greeting.as_bytes()).unwrap();
        let mut answers = answers.iter();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            heard.push_str(&line);
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                } else {
                    continue;
                }
            }
            let Some(answer) = answers.next() else { break };
            if answer.starts_with("354") {
                in_data = true;
            }
            if stream.write_all(answer.as_bytes()).is_err() {
                break;
            }
        }
        heard
    }

    fn values() -> [(&'static str, &'static str); 3] {
        [("code", CODE), ("correlation", "7F3A"), ("user", "alice")]
    }

    #[test]
    fn plain_smtp_delivers_the_message() {
        let (port, server) = scripted(
            "220 sink ESMTP\r\n",
            &["250 sink\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 queued\r\n", "221 bye\r\n"],
        );
        let sender = SmtpSender::new(config(port, SmtpTls::None)).unwrap();
        sender.send_rendered("alice", "alice@example.com", &format!("Your code is {CODE}"), &values()).unwrap();
        let heard = server.join().unwrap();
        assert!(heard.contains("MAIL FROM:<mfa@example.com>"), "{heard}");
        assert!(heard.contains("RCPT TO:<alice@example.com>"), "{heard}");
        assert!(heard.contains("Subject: Code for alice (7F3A)\r\n"), "{heard}");
        assert!(heard.contains("From: rlm_mfa <mfa@example.com>\r\n"), "{heard}");
        assert!(heard.contains(&format!("Your code is {CODE}")), "{heard}");
        assert!(heard.contains("QUIT"), "{heard}");
    }

    #[test]
    fn a_refusal_names_the_step_and_code_only() {
        let (port, server) =
            scripted("220 sink ESMTP\r\n", &["250 sink\r\n", "250 ok\r\n", "550 5.1.1 no such user alice\r\n"]);
        let sender = SmtpSender::new(config(port, SmtpTls::None)).unwrap();
        let e = sender.send_rendered("alice", "alice@example.com", CODE, &values()).unwrap_err();
        assert_eq!(e, SendError::Refused("the message (reply 550)".into()));
        assert_eq!(e.to_string(), "the mail server refused the message (reply 550)");
        drop(server);
    }

    #[test]
    fn a_server_without_starttls_is_refused_before_anything_is_sent() {
        let (port, server) = scripted("220 sink ESMTP\r\n", &["250 sink\r\n", "221 bye\r\n"]);
        let sender = SmtpSender::new(config(port, SmtpTls::StartTls)).unwrap();
        let e = sender.send_rendered("alice", "alice@example.com", CODE, &values()).unwrap_err();
        assert_eq!(e, SendError::Refused("STARTTLS: it does not offer it".into()));
        let heard = server.join().unwrap();
        assert!(!heard.contains("MAIL") && !heard.contains(CODE), "{heard}");
    }

    #[test]
    fn tls_to_a_plain_server_fails_cleanly() {
        let (port, server) = scripted("220 sink ESMTP\r\n", &[]);
        let sender = SmtpSender::new(config(port, SmtpTls::Tls)).unwrap();
        let e = sender.send_rendered("alice", "alice@example.com", CODE, &values()).unwrap_err();
        assert!(matches!(&e, SendError::Unreachable(_) | SendError::Timeout), "{e:?}");
        assert!(!e.to_string().contains(CODE));
        drop(server);
    }

    #[test]
    fn a_trickling_server_is_given_up_on_at_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // A greeting that never ends, one byte at a time.
            for _ in 0..100 {
                if stream.write_all(b"2").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let sender = SmtpSender::new(config(port, SmtpTls::None)).unwrap();
        let started = Instant::now();
        let e = sender.send_rendered("alice", "alice@example.com", CODE, &values()).unwrap_err();
        let took = started.elapsed();
        assert_eq!(e, SendError::Timeout);
        assert!(took >= Duration::from_millis(1400) && took < Duration::from_millis(2500), "took {took:?}");
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let sender = SmtpSender::new(config(port, SmtpTls::None)).unwrap();
        let e = sender.send("alice", "alice@example.com", CODE).unwrap_err();
        assert_eq!(e, SendError::Unreachable("connection refused".into()));
    }

    #[test]
    fn a_bad_destination_is_refused_without_quoting_it() {
        let sender = SmtpSender::new(config(1, SmtpTls::None)).unwrap();
        let e = sender.send("alice", "not an address", CODE).unwrap_err();
        assert_eq!(e, SendError::Template("the destination is not an e-mail address".into()));
    }

    #[test]
    fn broken_settings_are_named() {
        let field = |cfg: SmtpConfig| SmtpSender::new(cfg).unwrap_err().field;
        assert_eq!(field(SmtpConfig { from: "nobody".into(), ..config(25, SmtpTls::None) }), "from");
        assert_eq!(field(SmtpConfig { timeout: Duration::ZERO, ..config(25, SmtpTls::None) }), "timeout");
        let missing = PathBuf::from("/nonexistent/ca.pem");
        assert_eq!(field(SmtpConfig { ca_file: Some(missing), ..config(25, SmtpTls::StartTls) }), "ca_file");
        // The system's store, when no CA is given.
        SmtpSender::new(config(25, SmtpTls::StartTls)).unwrap();
    }

    #[test]
    fn debug_hides_the_password() {
        let cfg = SmtpConfig { login: Some(("mfa".into(), "s3cr3t".into())), ..config(25, SmtpTls::StartTls) };
        let text = format!("{:?}", SmtpSender::new(cfg).unwrap());
        assert!(!text.contains("s3cr3t") && text.contains("<redacted>"), "{text}");
    }
}

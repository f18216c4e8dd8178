//! HTTPS in front of a plain fake server (push provider, gateway,
//! privacyIDEA): a private CA made by the test with openssl, a server
//! certificate it signs for 127.0.0.1, and a relay that ends TLS with that
//! certificate and passes the bytes to the fake and back.
//!
//! Nothing here is trusted by the system: a client that verifies against the
//! system's store refuses it, one given the CA accepts it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// openssl's settings for the CA and the server certificate.
const OPENSSL_CONF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = rlm_mfa test CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A CA of the test's own and a server certificate it signed, as PEM files in `dir`.
pub struct TestCa {
    /// The CA's certificate: what a client is given as ca_file.
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("cannot run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestCa {
    /// Makes the CA and the server certificate in `dir` (created if missing).
    pub fn create(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("openssl.cnf"), OPENSSL_CONF).unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let mut ca = vec!["req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", "-days", "2"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        openssl(dir, &ca);
        let mut csr = vec!["req", "-new", "-config", "openssl.cnf", "-subj", "/CN=127.0.0.1"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(dir, &csr);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "openssl.cnf",
                "-extensions",
                "server",
                "-out",
                "server.pem",
            ],
        );
        TestCa { ca_file: dir.join("ca.pem"), server_cert: dir.join("server.pem"), server_key: dir.join("server.key") }
    }
}

struct Shared {
    stopped: AtomicBool,
    /// Handshakes that completed: a client that refused the certificate adds none.
    handshakes: AtomicUsize,
}

/// HTTPS on a free loopback port, relayed to a plain server; stops when dropped.
pub struct TlsFront {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TlsFront {
    /// Ends TLS with `ca`'s server certificate and relays to `backend`.
    pub fn start(ca: &TestCa, backend: SocketAddr) -> TlsFront {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&ca.server_cert).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(&ca.server_key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared { stopped: AtomicBool::new(false), handshakes: AtomicUsize::new(0) });
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, shared) = (Arc::clone(&config), Arc::clone(&accepting));
                thread::spawn(move || relay(stream, config, backend, &shared));
            }
        });
        TlsFront { addr, shared }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn quiet(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// Passes bytes both ways until either side closes, a minute at most.
fn relay(client: TcpStream, config: Arc<rustls::ServerConfig>, backend: SocketAddr, shared: &Shared) {
    let tick = Some(Duration::from_millis(5));
    let Ok(connection) = rustls::ServerConnection::new(config) else { return };
    if client.set_read_timeout(tick).is_err() {
        return;
    }
    let mut tls = rustls::StreamOwned::new(connection, client);
    let mut plain: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) && !shared.stopped.load(Ordering::SeqCst) {
        let read = tls.read(&mut buf);
        // The handshake is done once rustls has read and answered the client's first flight.
        if plain.is_none() && !tls.conn.is_handshaking() {
            shared.handshakes.fetch_add(1, Ordering::SeqCst);
            match TcpStream::connect(backend) {
                Ok(stream) if stream.set_read_timeout(tick).is_ok() => plain = Some(stream),
                _ => break,
            }
        }
        match read {
            Ok(0) => break,
            Ok(n) => {
                let Some(to) = plain.as_mut() else { break };
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if quiet(&e) => {}
            Err(_) => break, // the client refused the certificate, or went away
        }
        if let Some(from) = plain.as_mut() {
            match from.read(&mut buf) {
                Ok(0) => {
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    break;
                }
                Ok(n) => {
                    if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                        break;
                    }
                }
                Err(e) if quiet(&e) => {}
                Err(_) => break,
            }
        }
    }
}

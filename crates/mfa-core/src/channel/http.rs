//! What the HTTP clients (SMS/e-mail gateway, push provider, privacyIDEA)
//! share: one way to build an agent with bounded calls, to check and normalise
//! a configured URL, to read an answer within a bound, to name a transport
//! failure in plain words, and to show a URL without credentials.

use std::io;
use std::time::Duration;

use ureq::tls::RootCerts;

use super::resolver::AddressFirst;
use super::tls;

/// An answer as ureq gives it.
pub type Response = ureq::http::Response<ureq::Body>;

/// Idle connections kept per server: enough for every FreeRADIUS thread of a
/// large thread pool to find one.
pub const IDLE_PER_SERVER: usize = 64;

/// The connections an agent keeps open between calls: `per_server` idle ones
/// for each of `servers`, no more. Busy connections are those of the calling
/// threads, which FreeRADIUS bounds.
#[derive(Clone, Copy, Debug)]
pub struct Pool {
    pub per_server: usize,
    pub servers: usize,
}

impl Pool {
    /// `IDLE_PER_SERVER` for each server, or nothing kept at all.
    pub fn new(servers: usize, reuse: bool) -> Pool {
        Pool { per_server: if reuse { IDLE_PER_SERVER } else { 0 }, servers }
    }
}

/// An agent whose every call ends within `timeout`, from the name lookup to
/// the answer's last byte; TLS verified against `roots`; no redirect followed
/// (a redirected POST becomes a GET without its body); every status an answer.
/// An address in the URL is connected to as written, without a lookup (resolver.rs).
pub fn agent(timeout: Duration, roots: RootCerts, pool: Pool) -> ureq::Agent {
    let connector = ureq::unversioned::transport::DefaultConnector::new();
    ureq::Agent::with_parts(config(timeout, roots, pool), connector, AddressFirst::default())
}

/// The settings of [`agent`]; public so that the fuzz targets parse answers
/// with the very same ones.
pub fn config(timeout: Duration, roots: RootCerts, pool: Pool) -> ureq::config::Config {
    // The configuration gives one bound. It is the deadline of the whole call, and the
    // bound of each phase too, so that no phase is ever without one (ureq's are none).
    let bound = Some(timeout);
    ureq::Agent::config_builder()
        .timeout_global(bound)
        .timeout_resolve(bound)
        .timeout_connect(bound)
        .timeout_send_request(bound)
        .timeout_send_body(bound)
        .timeout_recv_response(bound)
        .timeout_recv_body(bound)
        .max_redirects(0)
        // Statuses are judged by each client: a 4xx from privacyIDEA carries its error.
        .http_status_as_error(false)
        // ureq 3 takes a proxy from the environment by default; the module never did,
        // and FreeRADIUS's environment is not where an administrator configures it.
        .proxy(None)
        .user_agent(concat!("rlm_mfa/", env!("CARGO_PKG_VERSION")))
        .max_idle_connections(pool.per_server.saturating_mul(pool.servers))
        .max_idle_connections_per_host(pool.per_server)
        .tls_config(tls::config(roots))
        .build()
}

// URLs as text (scheme check, redaction) belong to the text layer; here for the clients.
pub use crate::text::url::{has_http_scheme, redact};

/// `url` in the form requests are sent to (scheme and host in lower case,
/// international names in ASCII, spaces escaped, no fragment), or why it
/// cannot be used in the parser's words ("invalid port number"), never
/// quoting the URL itself.
pub fn normalize(url: &str) -> Result<String, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    parsed.set_fragment(None);
    let normal = String::from(parsed);
    // What ureq parses it with, in turn: both must agree that it is a URL.
    match ureq::http::Uri::try_from(normal.as_str()) {
        Ok(_) => Ok(normal),
        Err(_) => Err("cannot parse it".to_owned()),
    }
}

/// An Authorization value must be non-empty and on one line.
pub fn check_authorization(authorization: Option<&str>) -> Result<(), String> {
    match authorization {
        Some(auth) if auth.trim().is_empty() => Err("authorization is empty (leave it out to send none)".to_owned()),
        Some(auth) if auth.chars().any(char::is_control) => {
            Err("authorization holds a line break or another control character".to_owned())
        }
        _ => Ok(()),
    }
}

/// The body of `response`, or None when it is longer than `max` bytes (the rest
/// is not read); an error when reading fails, timeouts included.
pub fn read_body(response: Response, max: usize) -> Result<Option<Vec<u8>>, Failure> {
    match response.into_body().into_with_config().limit(max as u64).read_to_vec() {
        Ok(body) => Ok(Some(body)),
        Err(ureq::Error::BodyExceedsLimit(_)) => Ok(None),
        Err(e) => Err(failure(&e)),
    }
}

/// A call that got no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    /// Plain words: "connection refused", "TLS failed: ...".
    Unreachable(String),
}

/// A ureq error in plain words, from its kind only: an error's own text could
/// quote what was received.
pub fn failure(e: &ureq::Error) -> Failure {
    use ureq::Error as E;
    let reason = match e {
        E::Timeout(_) => return Failure::Timeout,
        E::Io(io) => return io_failure(io),
        E::HostNotFound => "cannot resolve its host name".to_owned(),
        // rustls's words ("invalid peer certificate: UnknownIssuer") are what the admin needs.
        E::Rustls(tls) => format!("TLS failed: {tls}"),
        E::Tls(why) => format!("TLS failed: {why}"),
        E::Protocol(_) | E::LargeResponseHeader(..) | E::BodyStalled => "its answer is not valid HTTP".to_owned(),
        E::ConnectionFailed => "the connection failed".to_owned(),
        E::BadUri(_) | E::Http(_) => "the request cannot be built from the configuration".to_owned(),
        E::InvalidProxyUrl | E::ConnectProxyFailed(_) => "the proxy failed".to_owned(),
        E::TooManyRedirects | E::RedirectFailed => "it redirects".to_owned(),
        E::RequireHttpsOnly(_) | E::TlsRequired => "https is required".to_owned(),
        E::BodyExceedsLimit(_) => "its answer is too long".to_owned(),
        // Not produced with http_status_as_error off; callers judge statuses themselves.
        E::StatusCode(code) => format!("HTTP status {code}"),
        _ => "the call failed".to_owned(),
    };
    Failure::Unreachable(reason)
}

/// An I/O error of a call or of reading its answer.
pub fn io_failure(e: &io::Error) -> Failure {
    if is_timeout(e) {
        return Failure::Timeout;
    }
    let inner = e.get_ref();
    // ureq's body reader carries its own errors inside io::Error::other.
    if let Some(ureq_error) = inner.and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return failure(ureq_error);
    }
    // rustls reports handshake and certificate failures inside an InvalidData.
    if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return Failure::Unreachable(format!("TLS failed: {tls}"));
    }
    Failure::Unreachable(io_reason(e.kind()))
}

/// A socket's WouldBlock is its read timeout on some platforms.
fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

/// Plain words from the error's kind only: an OS error's text adds "(os error 111)".
fn io_reason(kind: io::ErrorKind) -> String {
    match kind {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::UnexpectedEof => {
            "the connection closed before a complete answer".to_owned()
        }
        io::ErrorKind::ConnectionReset => "the connection was reset".to_owned(),
        // std's own descriptions are plain: "connection refused", "host unreachable".
        kind => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_must_be_one_non_empty_line() {
        assert!(check_authorization(None).is_ok());
        assert!(check_authorization(Some("Bearer x")).is_ok());
        assert!(check_authorization(Some(" ")).is_err());
        assert!(check_authorization(Some("a\nb")).is_err());
    }

    #[test]
    fn urls_are_normalized_or_refused_in_plain_words() {
        assert_eq!(normalize("HTTPS://H.example/a b#frag").unwrap(), "https://h.example/a%20b");
        assert_eq!(normalize("http://h:8080").unwrap(), "http://h:8080/");
        assert_eq!(normalize("http://h/x?key=K").unwrap(), "http://h/x?key=K");
        assert_eq!(normalize("http://h:99999/x?key=K3Y").unwrap_err(), "invalid port number");
        assert_eq!(normalize("http://[::1/x").unwrap_err(), "invalid IPv6 address");
        assert_eq!(normalize("http://:80/x").unwrap_err(), "empty host");
    }
}

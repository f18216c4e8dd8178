//! What the HTTP clients (SMS/e-mail gateway, push provider) share: one way to
//! build an agent with bounded calls, to check a configuration, to name a
//! transport failure in plain words, and to show a URL without credentials.

use std::error::Error;
use std::io;
use std::time::Duration;

/// An agent whose every call ends within `timeout`, connecting included, that
/// does not follow redirects (a redirected POST becomes a GET without its body).
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        // ureq bounds the connect separately (30 s by default) unless told.
        .timeout_connect(timeout)
        .timeout(timeout)
        .redirects(0)
        .user_agent(concat!("rlm_mfa/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Whether `url` starts with http:// or https:// (in any case).
pub fn has_http_scheme(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Why `url` cannot be used, in the parser's words ("invalid port number"),
/// never the URL itself; None when it parses.
pub fn url_problem(agent: &ureq::Agent, url: &str) -> Option<String> {
    agent
        .get(url)
        .request_url()
        .err()
        .map(|e| e.source().map(|s| s.to_string()).unwrap_or_else(|| "cannot parse it".to_owned()))
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

/// `url` with the user information (before an `@` of the authority), the query
/// and the fragment left out, and a note when something was: fit for a log line.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_len);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let path_len = tail.find(['?', '#']).unwrap_or(tail.len());
    let mut out = format!("{scheme}{host}{}", &tail[..path_len]);
    if host.len() != authority.len() || path_len != tail.len() {
        out.push_str(" (credentials and query left out)");
    }
    out
}

/// Runs one ureq call, turning a panic inside ureq into "not valid HTTP": ureq
/// 2.12.1 slices past the end of a header line that has no colon when it looks
/// that header up (a bare `Transfer-Encoding` line), and any server can send one.
pub fn contain_panic<T>(call: impl FnOnce() -> T) -> Result<T, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .map_err(|_| Failure::Unreachable("its answer is not valid HTTP".to_owned()))
}

/// The body of `response`, or None when it is longer than `max` bytes (the rest
/// is not read); an error when reading fails, timeouts included.
pub fn read_body(response: ureq::Response, max: usize) -> Result<Option<Vec<u8>>, Failure> {
    use std::io::Read;
    let mut body = Vec::new();
    response.into_reader().take(max as u64 + 1).read_to_end(&mut body).map_err(|e| io_failure(&e))?;
    Ok((body.len() <= max).then_some(body))
}

/// A call that got no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    /// Plain words: "connection refused", "TLS failed: ...".
    Unreachable(String),
}

/// A transport error in plain words, from its kind only: an error's own text
/// could quote what was received.
pub fn transport_failure(t: &ureq::Transport) -> Failure {
    let io = first_io_error(t);
    if io.is_some_and(is_timeout) {
        return Failure::Timeout;
    }
    use ureq::ErrorKind as K;
    let reason = match (t.kind(), io) {
        (K::Dns, _) => "cannot resolve its host name".to_owned(),
        // rustls reports handshake and certificate failures as InvalidData; its
        // words ("invalid peer certificate: UnknownIssuer") are what the admin needs.
        (K::ConnectionFailed, Some(e)) if e.kind() == io::ErrorKind::InvalidData => {
            format!("TLS failed: {e}")
        }
        (K::ConnectionFailed | K::Io, Some(e)) => io_reason(e.kind()),
        (K::ConnectionFailed, None) => "the connection failed".to_owned(),
        (K::Io, None) => "input/output error".to_owned(),
        (K::BadStatus | K::BadHeader, _) => "its answer is not valid HTTP".to_owned(),
        (K::InvalidUrl | K::UnknownScheme, _) => "the url is not valid".to_owned(),
        (K::InvalidProxyUrl | K::ProxyConnect | K::ProxyUnauthorized, _) => "the proxy failed".to_owned(),
        (K::TooManyRedirects, _) => "too many redirects".to_owned(),
        (K::InsecureRequestHttpsOnly, _) => "https is required".to_owned(),
        // Only an Error::Status has this kind, and callers handle those first.
        (K::HTTP, _) => "unexpected HTTP error".to_owned(),
    };
    Failure::Unreachable(reason)
}

/// An I/O error while reading an answer.
pub fn io_failure(e: &io::Error) -> Failure {
    if is_timeout(e) {
        Failure::Timeout
    } else {
        Failure::Unreachable(io_reason(e.kind()))
    }
}

/// ureq turns the socket's WouldBlock into TimedOut in most places, not all.
fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

/// The first I/O error in the chain: ureq keeps its kind when it wraps one.
fn first_io_error(t: &ureq::Transport) -> Option<&io::Error> {
    let mut cause = t.source();
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cause = e.source();
    }
    None
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
    fn redact_leaves_out_credentials_and_query() {
        assert_eq!(redact("https://h.example/api"), "https://h.example/api");
        assert_eq!(
            redact("https://u:p@h.example/api?key=s#x"),
            "https://h.example/api (credentials and query left out)"
        );
    }

    #[test]
    fn authorization_must_be_one_non_empty_line() {
        assert!(check_authorization(None).is_ok());
        assert!(check_authorization(Some("Bearer x")).is_ok());
        assert!(check_authorization(Some(" ")).is_err());
        assert!(check_authorization(Some("a\nb")).is_err());
    }

    #[test]
    fn schemes() {
        assert!(has_http_scheme("HTTPS://x"));
        assert!(has_http_scheme("http://x"));
        assert!(!has_http_scheme("ftp://x"));
    }
}

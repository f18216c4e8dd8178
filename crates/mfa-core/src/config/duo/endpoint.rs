//! Where Duo's API is: `api_host` is a host name (`api-XXXX.duosecurity.com`,
//! reached as https://), or for tests and a local relay only, an `http://`
//! URL on a loopback address; plain HTTP to anything else is refused.

use std::net::IpAddr;

/// The base URL requests go to and the host the signature names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://api-xxxx.duosecurity.com` or `http://127.0.0.1:8443`.
    pub base: String,
    /// The host (and port, when given) in lower case, as the canonical request has it.
    pub host: String,
}

/// The endpoint of a configured `api_host`, or why it cannot be used.
pub fn parse(api_host: &str) -> Result<Endpoint, String> {
    let lower = api_host.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("http://") {
        let host = rest.trim_end_matches('/');
        if !is_loopback(host) {
            return Err("http:// is for a loopback address only (tests); write Duo's API hostname alone".into());
        }
        return checked(format!("http://{host}"), host);
    }
    if lower.contains("://") || lower.contains('/') {
        return Err("write the API hostname alone (api-XXXXXXXX.duosecurity.com), without scheme or path".into());
    }
    checked(format!("https://{lower}"), &lower)
}

fn checked(base: String, host: &str) -> Result<Endpoint, String> {
    let parsed = url::Url::parse(&base).map_err(|e| e.to_string())?;
    if parsed.host_str().is_none_or(str::is_empty) || !parsed.username().is_empty() || parsed.query().is_some() {
        return Err("not a host name".into());
    }
    Ok(Endpoint { base, host: host.to_string() })
}

fn is_loopback(host_port: &str) -> bool {
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_https_and_http_is_loopback_only() {
        let e = parse("API-1234.DuoSecurity.com").unwrap();
        assert_eq!(e.base, "https://api-1234.duosecurity.com");
        assert_eq!(e.host, "api-1234.duosecurity.com");
        let e = parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((e.base.as_str(), e.host.as_str()), ("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(parse("http://[::1]:80").is_ok());
        assert!(parse("http://api-1234.duosecurity.com").is_err());
        assert!(parse("http://10.0.0.1:80").is_err());
        assert!(parse("https://api-1234.duosecurity.com").is_err());
        assert!(parse("api-1234.duosecurity.com/auth").is_err());
    }
}

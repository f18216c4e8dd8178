//! Name resolution for the HTTP clients. ureq's own resolver bounds a lookup
//! by the call's timeout by running it on a new thread, even when the URL's
//! host is an IP address, which needs no lookup: so every new connection to a
//! gateway, push provider, privacyIDEA or Duo server given by address would
//! start a thread inside FreeRADIUS. Here an address is used as written, and
//! only a name goes to ureq's resolver (and its thread, which the timeout needs).

use std::net::{IpAddr, SocketAddr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

#[derive(Debug, Default)]
pub struct AddressFirst {
    names: DefaultResolver,
}

impl Resolver for AddressFirst {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(address) = written_address(uri) else {
            return self.names.resolve(uri, config, timeout);
        };
        let mut resolved = self.empty();
        for wanted in config.ip_family().keep_wanted(std::iter::once(address)) {
            resolved.push(wanted);
        }
        if resolved.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(resolved)
    }
}

/// The socket address of an http(s) URI whose host is an IP address (IPv6 in
/// brackets), with the scheme's port when none is written; None for a name.
fn written_address(uri: &Uri) -> Option<SocketAddr> {
    let authority = uri.authority()?;
    let host = authority.host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let port = match (authority.port_u16(), uri.scheme_str()?) {
        (Some(port), "http" | "https") => port,
        (None, "http") => 80,
        (None, "https") => 443,
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::unversioned::transport::time::Duration as Bound;

    fn address(uri: &str) -> Option<String> {
        written_address(&uri.parse().unwrap()).map(|a| a.to_string())
    }

    #[test]
    fn addresses_are_taken_as_written_and_names_are_left_to_the_lookup() {
        assert_eq!(address("http://127.0.0.1:8080/validate/check").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(address("https://10.1.2.3/x").as_deref(), Some("10.1.2.3:443"));
        assert_eq!(address("http://10.1.2.3").as_deref(), Some("10.1.2.3:80"));
        assert_eq!(address("https://[::1]:8443/").as_deref(), Some("[::1]:8443"));
        assert_eq!(address("https://[fe80::1]/").as_deref(), Some("[fe80::1]:443"));
        assert_eq!(address("https://pi.example.com/"), None);
        assert_eq!(address("https://localhost:8443/"), None);
        assert_eq!(address("ftp://10.1.2.3/"), None);
    }

    /// An address needs no lookup, so no time: it resolves with none left (ureq's
    /// resolver would start its lookup thread and wait for it no time at all).
    #[test]
    fn an_address_resolves_without_a_lookup() {
        let config = Config::default();
        let none_left = NextTimeout { after: Bound::Exact(std::time::Duration::ZERO), ..NextTimeout::default() };
        let uri: Uri = "http://127.0.0.1:9/".parse().unwrap();
        let resolved = AddressFirst::default().resolve(&uri, &config, none_left).unwrap();
        assert_eq!(resolved.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.1:9"]);
        let only_v6 = Config::builder().ip_family(ureq::config::IpFamily::Ipv6Only).build();
        assert!(matches!(
            AddressFirst::default().resolve(&uri, &only_v6, NextTimeout::default()),
            Err(ureq::Error::HostNotFound)
        ));
    }
}

//! What the HTTP clients trust: the system's store, or the CA certificates an
//! administrator names (`ca_file`, `ca_path` of each client's section: push, sms,
//! email, privacyidea). Verification is always on, and there is no list compiled
//! in to fall back to: a client that needs a trust store and cannot load one, or
//! whose configured CAs cannot be read, is refused at start-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::setup::SetupError;

/// ureq's TLS settings: rustls with ring, verifying against `roots`.
pub fn config(roots: RootCerts) -> TlsConfig {
    TlsConfig::builder()
        .root_certs(roots)
        // ureq is built without a default provider (and so without compiled-in roots):
        // this one is ring, as the rest of the module's crypto.
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build()
}

/// The system's trust store when one of `urls` is https://; no root at all
/// otherwise, where no TLS is ever spoken (redirects are not followed).
pub fn system_if_needed<'a>(urls: impl IntoIterator<Item = &'a str>) -> Result<RootCerts, String> {
    if urls.into_iter().any(is_https) {
        system()
    } else {
        Ok(RootCerts::from(Vec::new()))
    }
}

/// The system's trusted CAs (SSL_CERT_FILE or SSL_CERT_DIR if set, else the
/// distribution's bundle), read now so that a missing store is an error at start-up.
pub fn system() -> Result<RootCerts, String> {
    system_certificates().map(roots_of)
}

/// The certificates of [`system`], for the clients that are not ureq (SMTP).
pub fn system_certificates() -> Result<Vec<CertificateDer<'static>>, String> {
    let found = rustls_native_certs::load_native_certs();
    let reasons: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
    usable(found.certs, &reasons)
}

/// The certificates rustls can use among those the system store gave; an error
/// when there is none. The store may hold a few it cannot use: those are skipped.
fn usable(certs: Vec<CertificateDer<'static>>, reasons: &[String]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
    if added > 0 {
        return Ok(certs);
    }
    let why = if reasons.is_empty() { "it holds no usable certificate".to_owned() } else { reasons.join("; ") };
    Err(format!("the system's trust store cannot be loaded: {why}"))
}

/// The CA certificates of `ca_file` and of the `.pem`/`.crt` files of the
/// directory `ca_path`, or None when neither is set. Every certificate must be
/// usable and there must be one at least: a CA set by hand is meant whole.
pub fn configured(ca_file: Option<&Path>, ca_path: Option<&Path>) -> Result<Option<RootCerts>, SetupError> {
    Ok(configured_certificates(ca_file, ca_path)?.map(roots_of))
}

/// The certificates of [`configured`], for the clients that are not ureq (SMTP).
pub fn configured_certificates(
    ca_file: Option<&Path>,
    ca_path: Option<&Path>,
) -> Result<Option<Vec<CertificateDer<'static>>>, SetupError> {
    let mut files: Vec<(PathBuf, &'static str)> = Vec::new();
    if let Some(file) = ca_file {
        files.push((file.to_owned(), "ca_file"));
    }
    if let Some(dir) = ca_path {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| SetupError::new("ca_path", format!("ca_path {}: {e}", dir.display())))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pem" || x == "crt"))
            .collect();
        found.sort();
        files.extend(found.into_iter().map(|p| (p, "ca_path")));
    }
    if ca_file.is_none() && ca_path.is_none() {
        return Ok(None);
    }
    let mut store = RootCertStore::empty();
    let mut certs = Vec::new();
    for (path, field) in &files {
        let refused = |e: &dyn std::fmt::Display| SetupError::new(field, format!("{field} {}: {e}", path.display()));
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| refused(&e))? {
            let cert = cert.map_err(|e| refused(&e))?;
            store.add(cert.clone()).map_err(|e| refused(&e))?;
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        let field = if ca_file.is_some() { "ca_file" } else { "ca_path" };
        return Err(SetupError::new(field, "ca_file/ca_path holds no certificate"));
    }
    Ok(Some(certs))
}

/// What a client with these settings trusts: the CAs of `ca_file`/`ca_path`
/// when either is set (those alone, never the system's besides), else the
/// system's store when one of `urls` is https://. A failure to load the system
/// store is reported under `store_field`, with `store_prefix` before the reason.
pub fn roots<'a>(
    ca_file: Option<&Path>,
    ca_path: Option<&Path>,
    urls: impl IntoIterator<Item = &'a str>,
    store_field: &'static str,
    store_prefix: &str,
) -> Result<RootCerts, SetupError> {
    match configured(ca_file, ca_path)? {
        Some(roots) => Ok(roots),
        None => system_if_needed(urls).map_err(|e| SetupError::new(store_field, format!("{store_prefix}{e}"))),
    }
}

fn roots_of(certs: Vec<CertificateDer<'static>>) -> RootCerts {
    RootCerts::from(certs.iter().map(|der| Certificate::from_der(der).to_owned()))
}

fn is_https(url: &str) -> bool {
    url.get(..8).is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_store_loads_here() {
        // The machines that build the module have one (ca-certificates).
        assert!(system().is_ok());
        assert!(system_if_needed(["http://h", "HTTPS://h"]).is_ok());
    }

    #[test]
    fn an_empty_or_unreadable_system_store_is_an_error() {
        let e = usable(Vec::new(), &[]).unwrap_err();
        assert_eq!(e, "the system's trust store cannot be loaded: it holds no usable certificate");
        let garbage = vec![CertificateDer::from(vec![1, 2, 3])];
        let e = usable(garbage, &["could not load certs from file /x: not found".into()]).unwrap_err();
        assert!(e.ends_with("could not load certs from file /x: not found"), "{e}");
    }

    #[test]
    fn without_a_system_store_https_is_refused_at_start_up() {
        crate::testutil::run_without_trust_store("channel::tls::tests::in_a_process_without_store");
    }

    #[test]
    #[ignore = "run by without_a_system_store_https_is_refused_at_start_up, in a process with no trust store"]
    fn in_a_process_without_store() {
        use crate::channel::gateway::{GatewayConfig, HttpGateway};
        use crate::channel::push::{HttpPushProvider, ProviderConfig};
        if !crate::testutil::without_trust_store() {
            return; // run by the test above, in a process of its own
        }
        let e = system().unwrap_err();
        assert!(
            e.starts_with("the system's trust store cannot be loaded: ") && e.contains(crate::testutil::NO_TRUST_STORE),
            "{e}"
        );
        assert!(system_if_needed(["http://h"]).is_ok(), "plain HTTP needs none");

        let gateway = |url: &str| {
            HttpGateway::new(GatewayConfig {
                url: url.into(),
                authorization: None,
                body_template: r#"{"to": "{destination}", "text": "{message}"}"#.into(),
                body_format: crate::channel::gateway::BodyFormat::Json,
                timeout: std::time::Duration::from_secs(1),
                ca_file: None,
                ca_path: None,
            })
        };
        let e = gateway("https://sms.example.com/send?key=K3Y").unwrap_err();
        assert_eq!(e.field, "url");
        assert!(e.message.starts_with("url: the system's trust store cannot be loaded"), "{e}");
        assert!(!e.message.contains("K3Y"));
        assert!(gateway("http://sms.example.com/send").is_ok());

        let push = |url: &str| {
            HttpPushProvider::new(ProviderConfig {
                base_url: url.into(),
                authorization: None,
                timeout: std::time::Duration::from_secs(1),
                ca_file: None,
                ca_path: None,
            })
        };
        let e = push("https://push.example.com/api").unwrap_err();
        assert_eq!(e.field, "url");
        assert!(e.message.starts_with("base_url: the system's trust store cannot be loaded"), "{e}");
        assert!(push("http://push.example.com/api").is_ok());
    }

    #[test]
    fn plain_http_needs_no_store() {
        assert!(matches!(system_if_needed(["http://h", "http://g"]), Ok(RootCerts::Specific(r)) if r.is_empty()));
    }

    #[test]
    fn configured_cas_are_whole_or_refused() {
        assert!(configured(None, None).unwrap().is_none());
        let dir = std::env::temp_dir().join(format!("rlm_mfa-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = configured(None, Some(&dir)).unwrap_err();
        assert_eq!((e.field, e.message.as_str()), ("ca_path", "ca_file/ca_path holds no certificate"));
        let e = configured(Some(&dir.join("missing.pem")), None).unwrap_err();
        assert_eq!(e.field, "ca_file");
        assert!(e.message.starts_with("ca_file "), "{}", e.message);
        let e = configured(None, Some(&dir.join("missing"))).unwrap_err();
        assert_eq!(e.field, "ca_path");
        std::fs::write(dir.join("bad.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let e = configured(None, Some(&dir)).unwrap_err();
        assert_eq!(e.field, "ca_path");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

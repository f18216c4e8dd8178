//! URLs as text: whether one is HTTP(S), and one shown without its credentials
//! (for checks of the configuration and log lines; the HTTP clients parse URLs
//! themselves).

/// Whether `url` starts with http:// or https:// (in any case).
pub fn has_http_scheme(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
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
    fn schemes() {
        assert!(has_http_scheme("HTTPS://x"));
        assert!(has_http_scheme("http://x"));
        assert!(!has_http_scheme("ftp://x"));
    }
}

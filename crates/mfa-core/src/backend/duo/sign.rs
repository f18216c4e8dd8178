//! Duo's request signature: an HMAC under the secret key over the canonical
//! request, sent as HTTP Basic credentials `ikey:hex-signature` beside the
//! `Date` header it covers.
//!
//! Version 5 (what Duo's reference clients send, duo_client 5.x): the lines
//! Date, METHOD, host in lower case, path, the canonical parameters (those of
//! the query; a POST's go in a JSON body instead), the SHA-512 (hex) of the
//! body (empty for a GET), and the SHA-512 of the `X-Duo-*` headers (none
//! here, so of nothing); HMAC-SHA512. A POST's body is the parameters as JSON
//! with sorted keys, no spaces and non-ASCII escaped, as duo_client writes it.
//! Version 2: the same first five lines, the POST's parameters in the fifth
//! (sent form-encoded); HMAC-SHA512.
//!
//! The canonical parameters: each key and value percent-encoded (all but
//! `A-Z a-z 0-9 - . _ ~`, upper-case hex), sorted, `key=value` joined by `&`.

use data_encoding::{BASE64, HEXLOWER};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha512};

/// What stays as it is in a canonical parameter (RFC 3986's unreserved).
pub const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A signature version Duo accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    V5,
}

/// One request as it is to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub date: String,
    /// The Authorization header's value: a secret's proof, never logged.
    pub authorization: String,
    /// The query (GET) without `?`, empty when none.
    pub query: String,
    /// The POST body and its Content-Type.
    pub body: Option<(String, &'static str)>,
}

/// Who signs: the integration key and the secret key.
pub struct Signer<'a> {
    pub ikey: &'a str,
    pub skey: &'a str,
    pub version: Version,
    /// The API host as the canonical request names it.
    pub host: &'a str,
}

impl Signer<'_> {
    /// Signs `method path` with `params` at `date` (RFC 2822).
    pub fn sign(&self, method: &str, path: &str, params: &[(&str, &str)], date: &str) -> Signed {
        let post = method.eq_ignore_ascii_case("POST");
        let (canonical, query, body) = match (self.version, post) {
            (Version::V5, true) => {
                let body = canon_json(params);
                (self.canonical_v5(date, method, path, "", &body), String::new(), Some((body, "application/json")))
            }
            (Version::V5, false) => {
                let query = canon_params(params);
                (self.canonical_v5(date, method, path, &query, ""), query, None)
            }
            (Version::V2, true) => {
                let form = canon_params(params);
                let canonical = self.head(date, method, path, &form);
                (canonical, String::new(), Some((form, "application/x-www-form-urlencoded")))
            }
            (Version::V2, false) => {
                let query = canon_params(params);
                (self.head(date, method, path, &query), query, None)
            }
        };
        Signed { date: date.to_string(), authorization: self.authorization(&canonical), query, body }
    }

    fn head(&self, date: &str, method: &str, path: &str, params: &str) -> String {
        format!("{date}\n{}\n{}\n{path}\n{params}", method.to_ascii_uppercase(), self.host.to_ascii_lowercase())
    }

    fn canonical_v5(&self, date: &str, method: &str, path: &str, params: &str, body: &str) -> String {
        let body_hash = HEXLOWER.encode(&Sha512::digest(body.as_bytes()));
        // No X-Duo-* headers are sent: the hash of their empty list.
        let headers_hash = HEXLOWER.encode(&Sha512::digest(b""));
        format!("{}\n{body_hash}\n{headers_hash}", self.head(date, method, path, params))
    }

    /// `Basic base64(ikey:hex(HMAC-SHA512(skey, canonical)))`.
    pub fn authorization(&self, canonical: &str) -> String {
        let mut mac = Hmac::<Sha512>::new_from_slice(self.skey.as_bytes()).expect("HMAC takes any key length");
        mac.update(canonical.as_bytes());
        let signature = HEXLOWER.encode(&mac.finalize().into_bytes());
        format!("Basic {}", BASE64.encode(format!("{}:{signature}", self.ikey).as_bytes()))
    }
}

/// The parameters, encoded and sorted as Duo's canonical form has them.
pub fn canon_params(params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (utf8_percent_encode(k, ESCAPED).to_string(), utf8_percent_encode(v, ESCAPED).to_string()))
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The parameters as a JSON object of strings: keys sorted, no spaces, all but
/// printable ASCII escaped (`\u00e9`), byte for byte what duo_client sends.
pub fn canon_json(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    // Code point order, as Python sorts its strings.
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let fields: Vec<String> = sorted.iter().map(|(k, v)| format!("{}:{}", json_string(k), json_string(v))).collect();
    format!("{{{}}}", fields.join(","))
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// `Tue, 21 Aug 2012 17:29:18 -0000` for seconds since 1970 (UTC), as
/// Python's email.utils.formatdate writes the Date header.
pub fn rfc2822(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Howard Hinnant's civil-from-days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} -0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    //! The expected values were computed by duo_client 5.7.0's own `sign()` and
    //! `canonicalize()` (tests/duo/vectors.py prints them; run it with the venv of
    //! scripts/duo.sh). The fake Duo server of tests/duo.rs checks every request
    //! of the module the same way.
    use super::*;

    const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
    const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
    const DATE: &str = "Tue, 21 Aug 2012 17:29:18 -0000";

    fn signer(version: Version) -> Signer<'static> {
        Signer { ikey: IKEY, skey: SKEY, version, host: "API-First.duosecurity.com" }
    }

    #[test]
    fn version_5_post_matches_duo_client() {
        let params = [
            ("username", "alice"),
            ("factor", "push"),
            ("device", "auto"),
            ("async", "1"),
            ("pushinfo", "nas=vpn gw&\u{e9}"),
            ("ipaddr", "192.0.2.7"),
        ];
        let signed = signer(Version::V5).sign("POST", "/auth/v2/auth", &params, DATE);
        assert_eq!(
            signed.body,
            Some((
                r#"{"async":"1","device":"auto","factor":"push","ipaddr":"192.0.2.7","pushinfo":"nas=vpn gw&\u00e9","username":"alice"}"#
                    .to_string(),
                "application/json"
            ))
        );
        assert_eq!(signed.query, "");
        assert_eq!(
            signed.authorization,
            "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6NjUyZmNjZGJhMzY4YjNhMzI3YTVjNmY2YTM5MjFiNTk5ODMyZTA3OWFhN2NhY2Ux\
             NDMwNWMzMzEyYTJhZjFkMmQ0MjM5OTY2Y2Q3ZTU5ZDZhMzZhN2E3MGJmYWQ2YmRhZWYxYzgxY2Q4ZTJlYWRkZTlmYjBhMTVj\
             MmM1ODdkMDc="
        );
    }

    #[test]
    fn version_5_get_matches_duo_client() {
        let signed = signer(Version::V5).sign("GET", "/auth/v2/auth_status", &[("txid", "a b/c~d+\u{e9}")], DATE);
        assert_eq!(signed.query, "txid=a%20b%2Fc~d%2B%C3%A9");
        assert_eq!(signed.body, None);
        assert_eq!(
            signed.authorization,
            "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6ODMwOGY0MzBlZTY5NzZlMmQ0YzM2ZWE4Y2UzNzA0MTdlODgwYzFjYjI0ZmRmZWVi\
             Mjg1NDNiYmYyNDJkZDMyNjZiNTVhMGUxYmJmZGU2Yjg0NWE4ZjNmNjQ2M2VkMjFhYTIyZDljODA5YzdlY2Y5NDM5MzAyZDFh\
             MTRkZjBhNTY="
        );
        let check = signer(Version::V5).sign("GET", "/auth/v2/check", &[], DATE);
        assert_eq!(
            check.authorization,
            "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6YTY4MzZkZGUwYWQ1NjY2ZDVjNTk3ZWU0NTU3ZDY3NjA5ZDMzMjZkZWM1YTdkOTNk\
             ODM2NGI2YTM0NzY2ZmEyOGQ2YzM1NDNlOTA3YWYzMTcyNTE3Mzk4OWM1NjI0MWUyY2Y1MzhkZWE4YTA2Y2IzZTRkNWU3NmNl\
             ZGQ3YWVmYjk="
        );
    }

    #[test]
    fn version_2_matches_duo_client() {
        let params = [("username", "alice"), ("factor", "passcode"), ("passcode", "123 456/\u{e9}")];
        let signed = signer(Version::V2).sign("POST", "/auth/v2/auth", &params, DATE);
        assert_eq!(
            signed.body.as_ref().map(|b| b.0.as_str()),
            Some("factor=passcode&passcode=123%20456%2F%C3%A9&username=alice")
        );
        assert_eq!(
            signed.authorization,
            "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6MzcyNWNmMTlhNmY1ZmE2Njk0MjI1NDA0OWZlYWYyYjU0OWY5ODFiZTI0ZmQ4M2Ji\
             NWE2NzI2Y2ZmOTc5YmNlN2U0NTEyZTNmZTQ0MzlkOWZjNjg1NzZhOTY4NWNkNzZhY2M4ZmE3MDhlNmEyZGQ0MjQ5MTg0ZTZl\
             M2I5M2UwM2Y="
        );
    }

    #[test]
    fn json_escapes_as_python_does() {
        assert_eq!(
            canon_json(&[("b", "\"\\\n\u{1}\u{7f}"), ("a", "\u{1f600}")]),
            r#"{"a":"\ud83d\ude00","b":"\"\\\n\u0001\u007f"}"#
        );
    }

    #[test]
    fn dates_are_rfc_2822() {
        assert_eq!(rfc2822(1_345_570_158), DATE);
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 -0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 -0000");
    }
}

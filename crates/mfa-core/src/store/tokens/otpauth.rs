//! Enrolling a token in an authenticator app: the otpauth:// URI its QR code holds.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::factor::token::{Token, TokenKind};

impl Token {
    /// The Key URI an authenticator app scans (Google's otpauth:// format).
    /// HOTP tokens start at counter 0, as enrollment does.
    pub fn otpauth_uri(&self, user: &str, issuer: &str) -> String {
        let mut uri = format!("otpauth://{}/", self.kind.name());
        if !issuer.is_empty() {
            percent_encode_into(&mut uri, issuer);
            uri.push(':');
        }
        percent_encode_into(&mut uri, user);
        uri.push_str("?secret=");
        uri.push_str(&self.secret.to_base32());
        if !issuer.is_empty() {
            uri.push_str("&issuer=");
            percent_encode_into(&mut uri, issuer);
        }
        uri.push_str("&algorithm=");
        uri.push_str(self.algorithm.name());
        uri.push_str(&format!("&digits={}", self.digits));
        match self.kind {
            TokenKind::Totp { period } => uri.push_str(&format!("&period={period}")),
            TokenKind::Hotp => uri.push_str("&counter=0"),
        }
        uri
    }
}

/// Everything but RFC 3986's unreserved characters is escaped, so that spaces,
/// `:` or `@` in names cannot change the URI's structure.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn percent_encode_into(out: &mut String, text: &str) {
    out.extend(utf8_percent_encode(text, ESCAPED));
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::ALICE;
    use super::super::TokenDb;

    #[test]
    fn otpauth_uris() {
        let db = TokenDb::parse(ALICE).unwrap();
        let alice = db.user("alice").unwrap();
        assert_eq!(
            alice.tokens[0].otpauth_uri("alice", "rlm_mfa"),
            "otpauth://totp/rlm_mfa:alice?secret=JBSWY3DPEHPK3PXP&issuer=rlm_mfa\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            alice.tokens[1].otpauth_uri("a b@example.com", "ACME Co:VPN"),
            "otpauth://hotp/ACME%20Co%3AVPN:a%20b%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co%3AVPN\
             &algorithm=SHA1&digits=6&counter=0"
        );
        assert_eq!(
            alice.tokens[0].otpauth_uri("j\u{f6}rg", ""),
            "otpauth://totp/j%C3%B6rg?secret=JBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30"
        );
    }
}

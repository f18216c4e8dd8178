//! What the module warns about when it starts (and the FFI layer logs then):
//! a configuration or a token file that works but weakens the module.

use super::Backend;
use crate::store::tokens::TokenDb;

impl Backend {
    /// One line per warning; none quotes a secret.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut lines = self.config().warnings();
        match self {
            Backend::Local(engine) => lines.extend(weak_secrets(&engine.tokens.current())),
            Backend::Duo(engine) => lines.extend(engine.startup_warnings()),
            Backend::PrivacyIdea(_) => {}
        }
        lines
    }
}

/// One line per user whose token has a secret shorter than RFC 4226's 128 bits
/// (logged at start-up and after each reload of the token file): the user and
/// the serials, never the secret.
pub(super) fn weak_secrets(db: &TokenDb) -> Vec<String> {
    db.weak_secrets()
        .into_iter()
        .map(|(user, serials)| {
            format!(
                "token file: user \"{user}\" has a secret shorter than 128 bits (token {}); RFC 4226 asks \
                 for 128 at least: enroll a new token",
                serials.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weak_secret_is_named_by_its_user_never_shown() {
        let db = TokenDb::parse(
            r#"{"users": {"alice": {"tokens": [{"serial": "T1", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"}]},
                          "bob": {"tokens": [{"serial": "T2", "type": "totp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}]}}}"#,
        )
        .unwrap();
        let lines = weak_secrets(&db);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("token file: user \"alice\" has a secret shorter than 128 bits (token T1)"));
        assert!(!lines[0].contains("JBSWY3DP"));
    }
}

//! Writing the token file's JSON: users sorted by name and defaults written out,
//! so that saved files diff cleanly.

use std::collections::BTreeMap;

use serde::Serialize;

use super::TokenDb;
use crate::factor::secret::Secret;
use crate::factor::token::TokenKind;

impl TokenDb {
    /// The file's text: users sorted by name so that saved files diff cleanly.
    pub fn to_json(&self) -> String {
        let users = self
            .users
            .iter()
            .map(|(name, user)| {
                let tokens = user
                    .tokens
                    .iter()
                    .map(|t| OutToken {
                        serial: &t.serial,
                        kind: t.kind.name(),
                        secret: &t.secret,
                        algorithm: t.algorithm.name(),
                        digits: t.digits,
                        period: match t.kind {
                            TokenKind::Totp { period } => Some(period),
                            TokenKind::Hotp => None,
                        },
                        description: t.description.as_deref(),
                    })
                    .collect();
                (
                    name.as_str(),
                    OutUser { tokens, sms: user.sms.as_deref(), email: user.email.as_deref(), groups: &user.groups },
                )
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&OutFile { users }).expect("token file serializes");
        text.push('\n');
        text
    }
}

#[derive(Serialize)]
struct OutFile<'a> {
    users: BTreeMap<&'a str, OutUser<'a>>,
}

#[derive(Serialize)]
struct OutUser<'a> {
    tokens: Vec<OutToken<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sms: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
}

#[derive(Serialize)]
struct OutToken<'a> {
    serial: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    secret: &'a Secret,
    algorithm: &'static str,
    digits: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factor::otp::Algorithm;
    use crate::factor::token::Token;

    #[test]
    fn output_is_sorted_and_stable() {
        let mut db = TokenDb::new();
        for name in ["zoe", "adam", "mia"] {
            let token = Token {
                serial: format!("S-{name}"),
                kind: TokenKind::Hotp,
                algorithm: Algorithm::Sha256,
                digits: 8,
                secret: Secret::from_bytes(vec![7; 20]),
                description: None,
            };
            db.add_token(name, token).unwrap();
        }
        let text = db.to_json();
        let (a, m, z) = (text.find("adam").unwrap(), text.find("mia").unwrap(), text.find("zoe").unwrap());
        assert!(a < m && m < z);
        assert_eq!(TokenDb::parse(&text).unwrap().to_json(), text);
        let names: Vec<&str> = db.users().map(|(n, _)| n).collect();
        assert_eq!(names, ["adam", "mia", "zoe"]);
    }
}

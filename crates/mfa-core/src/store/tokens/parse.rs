//! Reading the token file's JSON: strict (unknown fields are errors), each user
//! checked as soon as it is read, errors that name the user and stay one log line.

use crate::fast_map::{FastMap, Name};
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::validate::{duplicate_serial, validate_email, validate_groups, validate_sms, validate_user_name};
use super::{TokenDb, TokenError, User};
use crate::factor::otp::Algorithm;
use crate::factor::secret::Secret;
use crate::factor::token::{Token, TokenKind};

/// What a token that leaves `digits` or `period` out has (algorithm: SHA1).
pub const DEFAULT_DIGITS: u32 = 6;
pub const DEFAULT_PERIOD: u64 = 30;

impl TokenDb {
    /// Parses and validates the file's text.
    pub fn parse(text: &str) -> Result<TokenDb, TokenError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// Parses and validates the file's bytes, as `load` does.
    pub fn parse_bytes(bytes: &[u8]) -> Result<TokenDb, TokenError> {
        let context = ParseContext::default();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = FileSeed { context: &context }.deserialize(&mut de).and_then(|users| de.end().map(|()| users));
        match parsed {
            Ok(users) => Ok(TokenDb { users }),
            Err(e) => Err(context.invalid.borrow_mut().take().unwrap_or_else(|| TokenError::Syntax {
                path: None,
                user: context.failed_user.borrow_mut().take(),
                message: escape_controls(e.to_string()),
            })),
        }
    }
}

// ---------------------------------------------------------------------------
// The file's JSON shape

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    sms: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Totp,
    Hotp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    serial: String,
    #[serde(rename = "type")]
    kind: RawKind,
    secret: Secret,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    digits: Option<u32>,
    #[serde(default)]
    period: Option<u64>,
    #[serde(default)]
    description: Option<String>,
}

impl RawToken {
    fn into_token(self, user: &str) -> Result<Token, TokenError> {
        let serial = Some(self.serial.as_str());
        let kind = match (self.kind, self.period) {
            (RawKind::Totp, period) => TokenKind::Totp { period: period.unwrap_or(DEFAULT_PERIOD) },
            (RawKind::Hotp, None) => TokenKind::Hotp,
            (RawKind::Hotp, Some(_)) => {
                return Err(TokenError::invalid(user, serial, "period", "only totp tokens have a period".into()))
            }
        };
        let algorithm = match &self.algorithm {
            None => Algorithm::Sha1,
            Some(name) => Algorithm::parse(name).ok_or_else(|| {
                TokenError::invalid(user, serial, "algorithm", format!("must be SHA1, SHA256 or SHA512, not {name:?}"))
            })?,
        };
        let token = Token {
            serial: self.serial,
            kind,
            algorithm,
            digits: self.digits.unwrap_or(DEFAULT_DIGITS),
            secret: self.secret,
            description: self.description,
        };
        token.validate(user)?;
        Ok(token)
    }
}

/// What the deserializer remembers for error messages: the user being read when
/// serde failed (serde_json only gives a line), or the validation error that
/// stopped it.
#[derive(Default)]
struct ParseContext {
    failed_user: RefCell<Option<String>>,
    invalid: RefCell<Option<TokenError>>,
}

/// Deserializes `{"users": {...}}` straight into the database: each user is
/// checked and converted as soon as it is read, so that its temporaries are freed
/// before the next user's allocations (a 100,000-user file then leaves no heap
/// holes between the users' data).
struct FileSeed<'c> {
    context: &'c ParseContext,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = FastMap<Name, Box<User>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = FastMap<Name, Box<User>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a \"users\" field")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut users = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "users" {
                return Err(de::Error::unknown_field(&key, &["users"]));
            }
            if users.is_some() {
                return Err(de::Error::duplicate_field("users"));
            }
            users = Some(map.next_value_seed(UsersSeed { context: self.context })?);
        }
        users.ok_or_else(|| de::Error::missing_field("users"))
    }
}

struct UsersSeed<'c> {
    context: &'c ParseContext,
}

impl<'de> DeserializeSeed<'de> for UsersSeed<'_> {
    type Value = FastMap<Name, Box<User>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UsersSeed<'_> {
    type Value = FastMap<Name, Box<User>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping user names to {\"tokens\": [...]}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut users = crate::fast_map::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(name) = map.next_key::<String>()? {
            let raw = match map.next_value::<RawUser>() {
                Ok(raw) => raw,
                Err(e) => {
                    *self.context.failed_user.borrow_mut() = Some(name);
                    return Err(e);
                }
            };
            let checked = build_user(&name, raw).and_then(|user| {
                if users.contains_key(name.as_bytes()) {
                    Err(TokenError::invalid(&name, None, "users", "the user appears twice".into()))
                } else {
                    Ok(user)
                }
            });
            match checked {
                Ok(user) => {
                    users.insert(Name::from(name), Box::new(user));
                }
                Err(e) => {
                    let text = e.to_string();
                    *self.context.invalid.borrow_mut() = Some(e);
                    return Err(de::Error::custom(text));
                }
            }
        }
        users.shrink_to_fit();
        Ok(users)
    }
}

/// One user of the file, checked.
fn build_user(name: &str, raw: RawUser) -> Result<User, TokenError> {
    validate_user_name(name)?;
    validate_groups(name, &raw.groups)?;
    if let Some(number) = &raw.sms {
        validate_sms(name, number)?;
    }
    if let Some(address) = &raw.email {
        validate_email(name, address)?;
    }
    let mut user =
        User { tokens: Vec::with_capacity(raw.tokens.len()), sms: raw.sms, email: raw.email, groups: raw.groups };
    for raw_token in raw.tokens {
        let token = raw_token.into_token(name)?;
        if user.token(&token.serial).is_some() {
            return Err(duplicate_serial(name, &token.serial));
        }
        user.tokens.push(token);
    }
    Ok(user)
}

/// serde quotes an unknown field or type name as it is: escape its control
/// characters, so that the message stays one log line.
fn escape_controls(message: String) -> String {
    if !message.chars().any(char::is_control) {
        return message;
    }
    message.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{error_of, one_token, ALICE};
    use super::*;
    use crate::factor::otp::Algorithm;

    #[test]
    fn parses_the_design_example() {
        let db = TokenDb::parse(ALICE).unwrap();
        assert_eq!(db.len(), 1);
        let alice = db.user("alice").unwrap();
        assert_eq!(alice.tokens.len(), 2);
        let totp = &alice.tokens[0];
        assert_eq!(totp.serial, "TOTP-3F9A2C10");
        assert_eq!(totp.kind, TokenKind::Totp { period: 30 });
        assert_eq!(totp.algorithm, Algorithm::Sha1);
        assert_eq!(totp.digits, 6);
        assert_eq!(totp.secret.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(totp.description.as_deref(), Some("phone"));
        let hotp = alice.token("HOTP-0001").unwrap();
        assert_eq!(hotp.kind, TokenKind::Hotp);
        assert_eq!(hotp.secret.as_bytes(), b"12345678901234567890");
        assert!(db.user("bob").is_none());
    }

    #[test]
    fn defaults() {
        let db = TokenDb::parse(&one_token("")).unwrap();
        let t = &db.user("bob").unwrap().tokens[0];
        assert_eq!(t.kind, TokenKind::Totp { period: DEFAULT_PERIOD });
        assert_eq!(t.algorithm, Algorithm::Sha1);
        assert_eq!(t.digits, 6);
        assert_eq!(t.description, None);
        let db = TokenDb::parse(&one_token(r#", "algorithm": "SHA512", "digits": 8, "period": 60"#)).unwrap();
        let t = &db.user("bob").unwrap().tokens[0];
        assert_eq!(t.kind, TokenKind::Totp { period: 60 });
        assert_eq!(t.algorithm, Algorithm::Sha512);
        assert_eq!(t.digits, 8);
        assert!(TokenDb::parse(r#"{"users": {}}"#).unwrap().is_empty());
    }

    #[test]
    fn rejects_unknown_fields_and_bad_syntax() {
        let msg = error_of(&one_token(r#", "digit": 8"#));
        assert!(msg.contains("unknown field `digit`"), "{msg}");
        assert!(msg.contains("user \"bob\""), "{msg}");
        assert!(msg.contains("line"), "{msg}");
        assert!(error_of(r#"{"users": {"bob": {"tokens": [], "pin": 1}}}"#).contains("unknown field `pin`"));
        assert!(error_of(r#"{"users": {}, "version": 2}"#).contains("unknown field `version`"));
        assert!(error_of(r#"{"user": {}}"#).contains("unknown field `user`"));
        assert!(error_of(r#"{}"#).contains("missing field `users`"));
        // A user listed with no factor at all is known, and refused as having none.
        assert!(!TokenDb::parse(r#"{"users": {"bob": {}}}"#).unwrap().user("bob").unwrap().has_factor());
        let no_type = r#"{"users": {"bob": {"tokens": [{"serial": "S", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        assert!(error_of(no_type).contains("missing field `type`"));
        let bad_type =
            r#"{"users": {"bob": {"tokens": [{"serial": "S", "type": "sms", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        assert!(error_of(bad_type).contains("sms"));
        assert!(error_of(r#"{"users": {}} trailing"#).contains("trailing"));
        assert!(error_of("").contains("EOF"));
    }

    #[test]
    fn a_name_with_control_characters_stays_one_log_line() {
        // Found by fuzzing (fuzz/regressions/token_file/): serde quoted the name raw.
        for text in [
            "{\"users\": {}, \"x\\nrlm_mfa: forged line\": 1}",
            "{\"users\": {\"bob\": {\"tokens\": [{\"serial\": \"S\", \"type\": \"totp\\u001b[2J\"}]}}}",
            "{\"\u{7f}\"",
        ] {
            let error = error_of(text);
            assert!(!error.chars().any(char::is_control), "{error:?}");
        }
        assert!(error_of("{\"users\": {}, \"x\\ny\": 1}").contains("unknown field `x\\ny`"));
    }

    #[test]
    fn secret_errors_never_show_the_secret() {
        let bad = "JBSWY3DPEHPK3PX1"; // '1' is not base32
        let msg = error_of(&one_token("").replace("JBSWY3DPEHPK3PXP", bad));
        assert!(msg.contains("not valid base32") && msg.contains("\"bob\""), "{msg}");
        assert!(!msg.contains(bad), "{msg}");
        let short = "JBSWY3DP"; // 5 bytes
        let msg = error_of(&one_token("").replace("JBSWY3DPEHPK3PXP", short));
        assert!(msg.contains("too short") && !msg.contains(short), "{msg}");
    }

    #[test]
    fn many_users_parse() {
        // How fast 100,000 users load is measured by bench/ (part 2), not asserted here.
        let users = if cfg!(debug_assertions) { 20_000 } else { 100_000 };
        let mut text = String::from("{\"users\": {");
        for i in 0..users {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!(
                "\"user{i}\": {{\"tokens\": [{{\"serial\": \"TOTP-{i:08X}\", \"type\": \"totp\", \
                 \"secret\": \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\", \"description\": \"phone\"}}]}}"
            ));
        }
        text.push_str("}}");
        let db = TokenDb::parse(&text).unwrap();
        assert_eq!(db.len(), users);
        assert!(db.user(&format!("user{}", users - 1)).is_some());
    }
}

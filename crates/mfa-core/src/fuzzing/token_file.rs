//! The token file, as `TokenDb::load` reads it (bytes, not necessarily UTF-8).

use super::one_log_line;
use crate::factor::otp;
use crate::store::tokens::{TokenDb, TokenKind, User, MAX_PERIOD, MIN_SECRET_BYTES};

pub fn token_file(data: &[u8]) {
    let db = match TokenDb::parse_bytes(data) {
        Ok(db) => db,
        Err(e) => {
            let text = e.to_string();
            assert!(one_log_line(&text), "an error is one log line: {text:?}");
            for secret in secrets_in(data) {
                assert!(!text.contains(&secret), "an error shows a secret: {text:?}");
            }
            return;
        }
    };
    for (name, user) in db.users() {
        check_user(name, user);
    }
    // What the writer writes, the parser reads back as it was, and writes the same.
    let written = db.to_json();
    let again = TokenDb::parse(&written).unwrap_or_else(|e| panic!("the writer's output is refused: {e}"));
    assert_eq!(db.len(), again.len());
    for ((name, user), (name2, user2)) in db.users().zip(again.users()) {
        assert_eq!(name, name2);
        assert_same_user(user, user2);
    }
    assert_eq!(again.to_json(), written);
    // Folding case either merges nobody or says who.
    if let Ok(folded) = db.clone().folded() {
        assert_eq!(folded.len(), db.len());
        for (name, _) in db.users() {
            assert!(folded.user(&name.to_lowercase()).is_some());
        }
    }
}

/// What the parser promises of every user it accepts.
fn check_user(name: &str, user: &User) {
    assert!(!name.is_empty() && !name.chars().any(char::is_control));
    for (i, token) in user.tokens.iter().enumerate() {
        assert!(!token.serial.is_empty() && !token.serial.chars().any(char::is_control));
        assert!((otp::MIN_DIGITS..=otp::MAX_DIGITS).contains(&token.digits));
        assert!(token.secret.len() >= MIN_SECRET_BYTES);
        if let TokenKind::Totp { period } = token.kind {
            assert!((1..=MAX_PERIOD).contains(&period));
        }
        assert!(user.tokens[..i].iter().all(|t| t.serial != token.serial), "serials are unique");
    }
}

fn assert_same_user(a: &User, b: &User) {
    assert_eq!((&a.sms, &a.email), (&b.sms, &b.email));
    assert_eq!(a.tokens.len(), b.tokens.len());
    for (x, y) in a.tokens.iter().zip(&b.tokens) {
        assert_eq!(
            (&x.serial, x.kind, x.algorithm, x.digits, &x.description),
            (&y.serial, y.kind, y.algorithm, y.digits, &y.description)
        );
        assert_eq!(x.secret.as_bytes(), y.secret.as_bytes());
    }
}

/// The values of every "secret" field of a JSON input that look like a real
/// secret (16 characters or more) and appear nowhere else in the input, where
/// an error might legitimately quote them.
fn secrets_in(data: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return Vec::new() };
    let mut secrets = Vec::new();
    let mut others = Vec::new();
    collect(&value, false, &mut secrets, &mut others);
    secrets.retain(|s| s.chars().count() >= 16 && !others.iter().any(|o| o.contains(s.as_str())));
    secrets
}

fn collect(value: &serde_json::Value, is_secret: bool, secrets: &mut Vec<String>, others: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if is_secret => secrets.push(s.clone()),
        serde_json::Value::String(s) => others.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, false, secrets, others)),
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                others.push(key.clone());
                collect(v, key == "secret", secrets, others);
            }
        }
        other => others.push(other.to_string()),
    }
}

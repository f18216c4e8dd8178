//! The rules every token and user of the file must satisfy, checked when the file
//! is read and when a token or contact is added.

use super::TokenError;
use crate::factor::otp;
use crate::factor::secret::MIN_SECRET_BYTES;
use crate::factor::token::{Token, TokenKind};

/// The longest TOTP period accepted: a day.
pub const MAX_PERIOD: u64 = 86_400;

impl Token {
    /// Checks every rule a token in the file must satisfy.
    pub fn validate(&self, user: &str) -> Result<(), TokenError> {
        let serial = Some(self.serial.as_str());
        if self.serial.is_empty() {
            return Err(TokenError::invalid(user, None, "serial", "must not be empty".into()));
        }
        if self.serial.chars().any(char::is_control) {
            return Err(TokenError::invalid(user, serial, "serial", "must not contain control characters".into()));
        }
        if !(otp::MIN_DIGITS..=otp::MAX_DIGITS).contains(&self.digits) {
            return Err(TokenError::invalid(
                user,
                serial,
                "digits",
                format!("must be {} to {}, not {}", otp::MIN_DIGITS, otp::MAX_DIGITS, self.digits),
            ));
        }
        if let TokenKind::Totp { period } = self.kind {
            if !(1..=MAX_PERIOD).contains(&period) {
                return Err(TokenError::invalid(
                    user,
                    serial,
                    "period",
                    format!("must be 1 to {MAX_PERIOD} seconds, not {period}"),
                ));
            }
        }
        if self.secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::invalid(
                user,
                serial,
                "secret",
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// Groups are reply attribute values: each non-empty, one line, at most 253 bytes.
pub fn validate_groups(user: &str, groups: &[String]) -> Result<(), TokenError> {
    match groups.iter().find(|g| g.is_empty() || g.len() > 253 || g.chars().any(char::is_control)) {
        Some(bad) => Err(TokenError::invalid(
            user,
            None,
            "groups",
            format!("{bad:?} is empty, longer than 253 bytes or holds a control character"),
        )),
        None => Ok(()),
    }
}

/// A phone number: digits with an optional leading '+', spaces and dashes allowed.
pub fn validate_sms(user: &str, number: &str) -> Result<(), TokenError> {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let allowed =
        number.char_indices().all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (c == '+' && i == 0));
    if !allowed || !(6..=20).contains(&digits) {
        return Err(TokenError::invalid(
            user,
            None,
            "sms",
            "must be a phone number: 6 to 20 digits, an optional leading '+'".into(),
        ));
    }
    Ok(())
}

/// An e-mail address, checked loosely: one '@' with text on both sides.
pub fn validate_email(user: &str, address: &str) -> Result<(), TokenError> {
    let ok = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && address.len() <= 254
                && !address.chars().any(|c| c.is_control() || c.is_whitespace())
        }
        None => false,
    };
    if !ok {
        return Err(TokenError::invalid(user, None, "email", "must be an e-mail address".into()));
    }
    Ok(())
}

pub(super) fn validate_user_name(user: &str) -> Result<(), TokenError> {
    if user.is_empty() {
        return Err(TokenError::invalid(user, None, "users", "user names must not be empty".into()));
    }
    if user.chars().any(char::is_control) {
        return Err(TokenError::invalid(user, None, "users", "user names must not contain control characters".into()));
    }
    Ok(())
}

pub(super) fn duplicate_serial(user: &str, serial: &str) -> TokenError {
    TokenError::invalid(user, Some(serial), "serial", "another token of this user has the same serial".into())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{error_of, one_token};
    use super::super::TokenDb;

    #[test]
    fn sms_and_email_destinations() {
        let db = TokenDb::parse(
            r#"{"users": {"ann": {"sms": "+45 1234 5612", "email": "ann@example.com"},
                           "ben": {"tokens": [], "email": "ben@example.com"}}}"#,
        )
        .unwrap();
        let ann = db.user("ann").unwrap();
        assert_eq!(ann.sms.as_deref(), Some("+45 1234 5612"));
        assert!(ann.tokens.is_empty() && ann.has_factor());
        let again = TokenDb::parse(&db.to_json()).unwrap();
        assert_eq!(again.user("ann").unwrap().email.as_deref(), Some("ann@example.com"));
        assert_eq!(again.user("ben").unwrap().sms, None);

        for bad in [r#""sms": "12ab5678""#, r#""sms": "123""#, r#""email": "nobody""#, r#""email": "a@b@c""#] {
            let text = format!(r#"{{"users": {{"x": {{{bad}}}}}}}"#);
            assert!(TokenDb::parse(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_out_of_range_values_naming_user_serial_and_field() {
        for (fields, field) in [
            (r#", "digits": 5"#, "digits"),
            (r#", "digits": 9"#, "digits"),
            (r#", "period": 0"#, "period"),
            (r#", "period": 86401"#, "period"),
            (r#", "algorithm": "MD5""#, "algorithm"),
        ] {
            let msg = error_of(&one_token(fields));
            assert!(msg.contains("\"bob\""), "{msg}");
            assert!(msg.contains("\"S1\""), "{msg}");
            assert!(msg.contains(&format!("field \"{field}\"")), "{msg}");
        }
        assert!(TokenDb::parse(&one_token(r#", "digits": 8, "period": 86400"#)).is_ok());
        let hotp_period = r#"{"users": {"bob": {"tokens": [{"serial": "H", "type": "hotp",
            "secret": "JBSWY3DPEHPK3PXP", "period": 30}]}}}"#;
        assert!(error_of(hotp_period).contains("field \"period\""));
    }

    #[test]
    fn rejects_duplicate_serials_and_empty_names() {
        let dup = r#"{"users": {"carol": {"tokens": [
            {"serial": "X", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"},
            {"serial": "X", "type": "hotp", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        let msg = error_of(dup);
        assert!(msg.contains("\"carol\"") && msg.contains("\"X\"") && msg.contains("serial"));
        // The same serial under two users is fine: state is keyed by (user, serial).
        let two_users = r#"{"users": {
            "a": {"tokens": [{"serial": "X", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"}]},
            "b": {"tokens": [{"serial": "X", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        assert_eq!(TokenDb::parse(two_users).unwrap().len(), 2);
        let empty_user = r#"{"users": {"": {"tokens": []}}}"#;
        assert!(error_of(empty_user).contains("must not be empty"));
        let empty_serial = r#"{"users": {"d": {"tokens": [
            {"serial": "", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        assert!(error_of(empty_serial).contains("field \"serial\""));
        let twice = r#"{"users": {"e": {"tokens": []}, "e": {"tokens": []}}}"#;
        assert!(error_of(twice).contains("appears twice"));
    }
}

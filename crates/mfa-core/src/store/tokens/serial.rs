//! New token serials, for enrollment.

use super::TokenError;
use crate::factor::token::{Token, TokenKind};

impl Token {
    /// A random serial such as `TOTP-3F9A2C10`.
    pub fn new_serial(kind: &TokenKind) -> Result<String, TokenError> {
        let mut bytes = [0u8; 4];
        getrandom::getrandom(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(format!("{}-{:08X}", kind.name().to_ascii_uppercase(), u32::from_be_bytes(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_serials_look_right() {
        let s = Token::new_serial(&TokenKind::Totp { period: 30 }).unwrap();
        assert_eq!(s.len(), 13);
        assert!(s.starts_with("TOTP-"));
        assert!(s[5..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert!(Token::new_serial(&TokenKind::Hotp).unwrap().starts_with("HOTP-"));
    }
}

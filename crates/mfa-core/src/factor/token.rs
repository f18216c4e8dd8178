//! A one-time-password token: what a code is checked against. The token file
//! (`store::tokens`) reads, validates and writes them.

use crate::factor::otp::Algorithm;
use crate::factor::secret::Secret;

/// TOTP (RFC 6238) or HOTP (RFC 4226).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Totp { period: u64 },
    Hotp,
}

impl TokenKind {
    /// The token file's `type` value.
    pub fn name(&self) -> &'static str {
        match self {
            TokenKind::Totp { .. } => "totp",
            TokenKind::Hotp => "hotp",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub serial: String,
    pub kind: TokenKind,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub secret: Secret,
    pub description: Option<String>,
}

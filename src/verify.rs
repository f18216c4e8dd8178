//! Whether a code answers a token, given the token's state: the one rule that
//! the module and `mfa-admin check` share.

use crate::journal::TokenState;
use crate::otp;
use crate::tokens::{Token, TokenKind};

/// How far from the expected value a code may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// TOTP steps accepted either side of the current one.
    pub totp_window: u64,
    /// HOTP codes accepted past the expected one.
    pub hotp_look_ahead: u64,
}

/// The step (TOTP) or counter (HOTP) at which `code` is valid and not yet used.
pub fn find(token: &Token, state: &TokenState, code: &str, now: u64, windows: Windows) -> Option<u64> {
    let secret = token.secret.as_bytes();
    match token.kind {
        TokenKind::Totp { period } => otp::find_totp(
            secret,
            token.algorithm,
            token.digits,
            period,
            now,
            windows.totp_window,
            state.last_step,
            code,
        ),
        TokenKind::Hotp => otp::find_hotp(
            secret,
            token.algorithm,
            token.digits,
            state.next_counter,
            windows.hotp_look_ahead,
            code,
        ),
    }
}

/// Whether `code` is right for a TOTP token but its step was already used (for
/// the log: a replay is worth telling from a wrong guess).
pub fn is_replay(token: &Token, code: &str, now: u64, windows: Windows) -> bool {
    matches!(token.kind, TokenKind::Totp { .. })
        && find(token, &TokenState::default(), code, now, windows).is_some()
}

//! Whether a code answers a token, given the token's state: the one rule that
//! the module and `mfa-admin check` share.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::factor::otp;
use crate::factor::state::TokenState;
use crate::factor::token::{Token, TokenKind};

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
        TokenKind::Hotp => {
            otp::find_hotp(secret, token.algorithm, token.digits, state.next_counter, windows.hotp_look_ahead, code)
        }
    }
}

/// Whether `code` is right for a TOTP token but its step was already used (for
/// the log: a replay is worth telling from a wrong guess).
pub fn is_replay(token: &Token, code: &str, now: u64, windows: Windows) -> bool {
    matches!(token.kind, TokenKind::Totp { .. }) && find(token, &TokenState::default(), code, now, windows).is_some()
}

/// The CHAP answer (RFC 1994) a NAS computes for `code`: MD5(ident, code, challenge).
pub fn chap_response(ident: u8, code: &str, challenge: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update([ident]);
    md5.update(code.as_bytes());
    md5.update(challenge);
    md5.finalize().into()
}

/// Like [`find`] for a NAS that sent CHAP-Password: the code itself never
/// arrives, so every candidate code in the window is tried against the answer.
/// TOTP: the highest unused matching step; HOTP: the lowest matching counter.
pub fn find_chap(
    token: &Token,
    state: &TokenState,
    ident: u8,
    challenge: &[u8],
    response: &[u8; 16],
    now: u64,
    windows: Windows,
) -> Option<u64> {
    find_answer(token, state, now, windows, |code| bool::from(chap_response(ident, code, challenge).ct_eq(response)))
}

/// Like [`find`] when the request carries something computed from the code
/// (CHAP, MS-CHAPv2) instead of the code: every candidate code of the window is
/// tried with `answers`. TOTP: the highest unused matching step; HOTP: the
/// lowest matching counter.
pub fn find_answer(
    token: &Token,
    state: &TokenState,
    now: u64,
    windows: Windows,
    answers: impl Fn(&str) -> bool,
) -> Option<u64> {
    let codes = otp::Codes::new(token.secret.as_bytes(), token.digits, token.algorithm);
    let answers = |counter: u64| answers(&codes.code(counter));
    match token.kind {
        TokenKind::Totp { period } => {
            let current = otp::totp_step(now, period);
            let first = current.saturating_sub(windows.totp_window);
            let last = current.saturating_add(windows.totp_window);
            (first..=last)
                .rev()
                .filter(|step| state.last_step.is_none_or(|used| *step > used))
                .find(|step| answers(*step))
        }
        TokenKind::Hotp => {
            let last = state.next_counter.saturating_add(windows.hotp_look_ahead);
            (state.next_counter..=last).find(|counter| answers(*counter))
        }
    }
}

/// The code of `token` at `found` (a step or counter that [`find_answer`] gave).
pub fn code_at(token: &Token, found: u64) -> String {
    otp::Codes::new(token.secret.as_bytes(), token.digits, token.algorithm).code(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factor::secret::Secret;

    fn token(kind: TokenKind) -> Token {
        Token {
            serial: "S".into(),
            kind,
            algorithm: otp::Algorithm::Sha1,
            digits: 6,
            secret: Secret::from_bytes(b"12345678901234567890".to_vec()),
            description: None,
        }
    }

    const W: Windows = Windows { totp_window: 1, hotp_look_ahead: 10 };

    #[test]
    fn chap_finds_the_totp_step_and_respects_replay() {
        let t = token(TokenKind::Totp { period: 30 });
        let now = 1_700_000_015;
        let code = otp::hotp_code(b"12345678901234567890", now / 30 - 1, 6, otp::Algorithm::Sha1);
        let answer = chap_response(7, &code, b"challenge-bytes!");
        let fresh = TokenState::default();
        assert_eq!(find_chap(&t, &fresh, 7, b"challenge-bytes!", &answer, now, W), Some(now / 30 - 1));
        let used = TokenState { last_step: Some(now / 30 - 1), next_counter: 0 };
        assert_eq!(find_chap(&t, &used, 7, b"challenge-bytes!", &answer, now, W), None);
        assert_eq!(find_chap(&t, &fresh, 8, b"challenge-bytes!", &answer, now, W), None, "other ident");
        assert_eq!(find_chap(&t, &fresh, 7, b"other-challenge!", &answer, now, W), None);
    }

    #[test]
    fn chap_finds_the_hotp_counter_within_the_look_ahead() {
        let t = token(TokenKind::Hotp);
        let state = TokenState { last_step: None, next_counter: 3 };
        // RFC 4226 appendix D: counter 5 is 254676.
        let answer = chap_response(1, "254676", &[0u8; 16]);
        assert_eq!(find_chap(&t, &state, 1, &[0u8; 16], &answer, 0, W), Some(5));
        let ahead = TokenState { last_step: None, next_counter: 6 };
        assert_eq!(find_chap(&t, &ahead, 1, &[0u8; 16], &answer, 0, W), None);
    }

    #[test]
    fn chap_response_is_md5_of_ident_code_challenge() {
        // hashlib.md5(b"\x01secret" + bytes(16)), computed outside this crate.
        let expected = data_encoding::HEXLOWER.decode(b"7570c653cdf4755ccffcaa80f29268d1").unwrap();
        assert_eq!(chap_response(1, "secret", &[0u8; 16]).to_vec(), expected);
    }
}

//! The configuration the engine's tests start from: the shipped defaults with the
//! files in a temp directory (and lockout after 3 failures).

use std::path::Path;

use crate::config::{RawConfig, RawLockout};

/// The RFC 4226/6238 SHA1 seed, raw and in base32.
pub const SEED: &[u8] = b"12345678901234567890";
pub const SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// A time in the middle of a 30 s step.
pub const T: u64 = 1_700_000_015;

pub fn raw_config(dir: &Path, mode: &str) -> RawConfig {
    RawConfig {
        mode: Some(mode.into()),
        tokens: Some(dir.join("tokens.json").display().to_string()),
        state: Some(dir.join("state/state.jsonl").display().to_string()),
        state_key: Some(dir.join("state.key").display().to_string()),
        require_token: true,
        totp_window: 1,
        hotp_look_ahead: 10,
        otp_length: 6,
        lockout: RawLockout { max_failures: 3, duration: 300 },
        challenge_timeout: 120,
        max_rounds: 3,
        code_length: 6,
        code_lifetime: 300,
        ..RawConfig::default()
    }
}

//! What a token has used up: the state that replay protection keeps (stored by
//! the state journal) and that checking a code reads.

/// Replay protection state of one token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenState {
    /// Last accepted TOTP time step; a code must come from a later step.
    pub last_step: Option<u64>,
    /// First HOTP counter that may still be accepted.
    pub next_counter: u64,
}

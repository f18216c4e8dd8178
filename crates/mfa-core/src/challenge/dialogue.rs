//! The payload of the module's own challenges: where the user is in the
//! dialogue, and the code sent by SMS or e-mail, if any.
//!
//! Encoding (14 bytes): `stage(1) method(1) round(1) code length(1, 0xFF = none)
//! code(10, zero padded)`. The code field has a fixed size so that the State's
//! length tells nothing of it.

use std::fmt;

use super::envelope::{self, sealed_len, Payload};
use super::{Binding, StateError, StateKey};

/// The longest code sent by SMS or e-mail (config allows 4 to 10 digits).
pub const MAX_SENT_CODE: usize = 10;
const NO_CODE: u8 = 0xFF;

// Offsets in the encoding.
const STAGE: usize = 0;
const METHOD: usize = STAGE + 1;
const ROUND: usize = METHOD + 1;
const CODE_LEN: usize = ROUND + 1;
const CODE: usize = CODE_LEN + 1;

/// Length of every State that carries a dialogue.
pub const STATE_LEN: usize = sealed_len(Dialogue::LEN);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The user chooses a method.
    Menu,
    /// The user types a code.
    Code,
}

/// The dialogue a State carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Dialogue {
    pub stage: Stage,
    /// Which second-factor method (index into the user's method list, 0-based); 0 when not chosen.
    pub method: u8,
    /// Wrong answers so far in this dialogue.
    pub round: u8,
    /// Unix time after which the State is refused.
    pub expires: u64,
    /// A code sent by SMS or e-mail: ASCII digits, at most 10; None for app and
    /// hardware tokens. Secret, so Debug does not show it.
    pub sent_code: Option<String>,
}

impl fmt::Debug for Dialogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialogue")
            .field("stage", &self.stage)
            .field("method", &self.method)
            .field("round", &self.round)
            .field("expires", &self.expires)
            .field("sent_code", &self.sent_code.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Payload for Dialogue {
    const KIND: u8 = envelope::DIALOGUE;
    const LEN: usize = CODE + MAX_SENT_CODE;

    fn expires(&self) -> u64 {
        self.expires
    }

    fn encode(&self, out: &mut [u8]) {
        out[STAGE] = match self.stage {
            Stage::Menu => 0,
            Stage::Code => 1,
        };
        out[METHOD] = self.method;
        out[ROUND] = self.round;
        match &self.sent_code {
            None => out[CODE_LEN] = NO_CODE,
            Some(code) => {
                assert!(
                    code.len() <= MAX_SENT_CODE && code.bytes().all(|b| b.is_ascii_digit()),
                    "a sent code must be at most {MAX_SENT_CODE} ASCII digits"
                );
                out[CODE_LEN] = code.len() as u8;
                out[CODE..CODE + code.len()].copy_from_slice(code.as_bytes());
            }
        }
    }

    fn decode(bytes: &[u8], expires: u64) -> Option<Dialogue> {
        let stage = match bytes[STAGE] {
            0 => Stage::Menu,
            1 => Stage::Code,
            _ => return None,
        };
        let sent_code = match bytes[CODE_LEN] {
            NO_CODE => None,
            n if usize::from(n) <= MAX_SENT_CODE => {
                let code = &bytes[CODE..CODE + usize::from(n)];
                if !code.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                Some(code.iter().map(|&b| char::from(b)).collect())
            }
            _ => return None,
        };
        Some(Dialogue { stage, method: bytes[METHOD], round: bytes[ROUND], expires, sent_code })
    }
}

/// Seals `dialogue` for `binding`: always [`STATE_LEN`] bytes (127, within the
/// 253 of one RADIUS attribute).
///
/// # Panics
/// If `sent_code` is longer than 10 characters or not ASCII digits (the caller
/// makes the codes), or if the system random number generator fails.
pub fn seal(key: &StateKey, binding: &Binding, dialogue: &Dialogue) -> Vec<u8> {
    envelope::seal(key, binding, dialogue)
}

/// Opens and checks a dialogue's State; returns the dialogue and its 16-byte id
/// (see [`envelope::open`] for the order of the checks).
pub fn unseal(key: &StateKey, binding: &Binding, now: u64, state: &[u8]) -> Result<(Dialogue, [u8; 16]), StateError> {
    envelope::open(key, binding, now, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::challenge::test_support::{binding, dialogue, key, NOW};

    #[test]
    fn round_trip() {
        let k = key(1);
        for d in [
            dialogue(),
            Dialogue { stage: Stage::Menu, method: 0, round: 0, expires: NOW, sent_code: None },
            Dialogue { sent_code: Some(String::new()), ..dialogue() },
            Dialogue { method: 255, round: 255, expires: u64::MAX, sent_code: Some("0042".into()), ..dialogue() },
        ] {
            let state = seal(&k, &binding(), &d);
            assert_eq!(state.len(), STATE_LEN);
            let (opened, _id) = unseal(&k, &binding(), NOW, &state).unwrap();
            assert_eq!(opened, d);
        }
    }

    #[test]
    #[should_panic(expected = "ASCII digits")]
    fn sealing_a_code_that_does_not_fit_panics() {
        let d = Dialogue { sent_code: Some("01234567890".into()), ..dialogue() };
        seal(&key(1), &binding(), &d);
    }

    #[test]
    fn debug_hides_sent_code() {
        let shown = format!("{:?}", dialogue());
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("0123456789"), "{shown}");
        let shown = format!("{:?}", Dialogue { sent_code: None, ..dialogue() });
        assert!(shown.contains("sent_code: None"), "{shown}");
    }
}

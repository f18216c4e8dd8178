//! Why a State was refused, in words fit for the log.

use std::fmt;

/// Why a State was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// Wrong length or version: not a State of this module.
    Malformed,
    /// The seal does not open: another key, or altered bytes.
    Forged,
    Expired,
    OtherInstance,
    OtherUser,
    OtherNas,
    Reused,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateError::Malformed => "the State is not one this module issues (wrong length or version)",
            StateError::Forged => "the State was not issued by this module or was altered",
            StateError::Expired => "the State has expired",
            StateError::OtherInstance => "the State belongs to another instance of the module",
            StateError::OtherUser => "the State belongs to another user",
            StateError::OtherNas => "the State belongs to another NAS",
            StateError::Reused => "the State was already used",
        })
    }
}

impl std::error::Error for StateError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_plain_words() {
        assert_eq!(StateError::Forged.to_string(), "the State was not issued by this module or was altered");
        assert_eq!(StateError::OtherUser.to_string(), "the State belongs to another user");
        assert_eq!(StateError::OtherNas.to_string(), "the State belongs to another NAS");
        assert_eq!(StateError::Expired.to_string(), "the State has expired");
        assert_eq!(StateError::Reused.to_string(), "the State was already used");
    }
}

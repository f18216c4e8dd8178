//! Splitting User-Password into password and code.

use super::input::Input;
use crate::factor::password::{split, OtpPosition, SplitConfig, SplitError};

/// First byte: position and fixed length; then the separator (length-prefixed;
/// empty means fixed length); the rest: User-Password, as the module reads it
/// (invalid UTF-8 replaced).
pub fn password_split(data: &[u8]) {
    let mut input = Input::new(data);
    let choice = input.byte();
    let cfg = SplitConfig {
        separator: input.text(),
        otp_position: if choice & 1 == 0 { OtpPosition::Last } else { OtpPosition::First },
        otp_length: usize::from(choice >> 1),
    };
    let field = String::from_utf8_lossy(input.rest());
    let field = field.as_ref();
    let result = split(field, &cfg);
    let sep = cfg.separator.as_str();

    let parts = match result {
        Ok(parts) => parts,
        Err(SplitError::NoSeparator) => {
            assert!(!sep.is_empty() && !field.contains(sep));
            return;
        }
        Err(SplitError::TooShort) => {
            assert!(sep.is_empty() && field.chars().count() <= cfg.otp_length);
            return;
        }
        Err(SplitError::EmptyPassword | SplitError::EmptyOtp) => return,
    };
    let (password, otp) = (parts.password, parts.otp);
    assert!(!password.is_empty() && !otp.is_empty());
    // Nothing invented, nothing lost: both halves are slices of the field that,
    // with the separator, make it up exactly.
    for half in [password, otp] {
        let start = (half.as_ptr() as usize).checked_sub(field.as_ptr() as usize);
        assert!(start.is_some_and(|start| start + half.len() <= field.len()), "a half lies inside the field");
    }
    let rebuilt = match cfg.otp_position {
        OtpPosition::Last => format!("{password}{sep}{otp}"),
        OtpPosition::First => format!("{otp}{sep}{password}"),
    };
    assert_eq!(rebuilt, field);
    if sep.is_empty() {
        assert_eq!(otp.chars().count(), cfg.otp_length, "a fixed-length code");
    } else {
        // The code never holds the separator: the password may.
        assert!(!otp.contains(sep));
    }
    // Debug shows neither secret, whatever they are.
    assert_eq!(format!("{parts:?}"), "Split { password: <redacted>, otp: <redacted> }");
}

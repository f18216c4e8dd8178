//! Splitting one password field into the static password and the one-time
//! code, for clients that have a single password prompt.

use std::fmt;

/// Where the code sits in the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpPosition {
    /// `password,otp`
    Last,
    /// `otp,password`
    First,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitConfig {
    /// Text between password and code; empty means the code is the first or
    /// last `otp_length` characters with nothing in between.
    pub separator: String,
    pub otp_position: OtpPosition,
    /// Only used when `separator` is empty.
    pub otp_length: usize,
}

/// The two halves of the field, borrowed from it so that no extra copy of a
/// secret is made.
#[derive(Clone, PartialEq, Eq)]
pub struct Split<'a> {
    pub password: &'a str,
    pub otp: &'a str,
}

// Hand-written so that `{:?}` in a log line can never leak either secret.
impl fmt::Debug for Split<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Split")
            .field("password", &format_args!("<redacted>"))
            .field("otp", &format_args!("<redacted>"))
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitError {
    NoSeparator,
    EmptyPassword,
    EmptyOtp,
    TooShort,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSeparator => "no separator between password and code",
            Self::EmptyPassword => "the password is empty",
            Self::EmptyOtp => "the code is empty",
            Self::TooShort => "too short to hold both a password and a code",
        })
    }
}

impl std::error::Error for SplitError {}

/// Splits `field` into password and code.
///
/// With a separator, `Last` splits at its last occurrence and `First` at its
/// first, because passwords may contain the separator but codes never do.
/// Without one, the code is the last or first `otp_length` characters
/// (characters, not bytes, so a multi-byte password is never cut mid-character).
pub fn split<'a>(field: &'a str, cfg: &SplitConfig) -> Result<Split<'a>, SplitError> {
    let (password, otp) = if cfg.separator.is_empty() {
        split_fixed(field, cfg.otp_length, cfg.otp_position)?
    } else {
        let sep = cfg.separator.as_str();
        // One character (the usual ","): searched as a char, without a substring
        // searcher's set-up, which costs more than the search itself.
        let mut one = sep.chars();
        let split = match (one.next(), one.next(), cfg.otp_position) {
            (Some(c), None, OtpPosition::Last) => field.rsplit_once(c),
            (Some(c), None, OtpPosition::First) => field.split_once(c).map(|(otp, password)| (password, otp)),
            (_, _, OtpPosition::Last) => field.rsplit_once(sep),
            (_, _, OtpPosition::First) => field.split_once(sep).map(|(otp, password)| (password, otp)),
        };
        split.ok_or(SplitError::NoSeparator)?
    };
    if password.is_empty() {
        return Err(SplitError::EmptyPassword);
    }
    if otp.is_empty() {
        return Err(SplitError::EmptyOtp);
    }
    Ok(Split { password, otp })
}

/// Fixed-length split without a separator; returns (password, otp).
fn split_fixed(field: &str, otp_length: usize, position: OtpPosition) -> Result<(&str, &str), SplitError> {
    let chars = field.chars().count();
    // The password needs at least one character of its own.
    if chars <= otp_length {
        return Err(SplitError::TooShort);
    }
    let password_chars = chars - otp_length;
    // Byte index of the boundary, counted in characters from the start.
    let at_char = |n: usize| field.char_indices().nth(n).map_or(field.len(), |(i, _)| i);
    Ok(match position {
        OtpPosition::Last => {
            let (password, otp) = field.split_at(at_char(password_chars));
            (password, otp)
        }
        OtpPosition::First => {
            let (otp, password) = field.split_at(at_char(otp_length));
            (password, otp)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(separator: &str, otp_position: OtpPosition, otp_length: usize) -> SplitConfig {
        SplitConfig { separator: separator.to_owned(), otp_position, otp_length }
    }

    fn ok<'a>(password: &'a str, otp: &'a str) -> Result<Split<'a>, SplitError> {
        Ok(Split { password, otp })
    }

    #[test]
    fn separator_last() {
        let c = cfg(",", OtpPosition::Last, 6);
        assert_eq!(split("secret,123456", &c), ok("secret", "123456"));
        // The password may contain the separator; the code never does.
        assert_eq!(split("se,cr,et,123456", &c), ok("se,cr,et", "123456"));
        assert_eq!(split("secret123456", &c), Err(SplitError::NoSeparator));
        assert_eq!(split("", &c), Err(SplitError::NoSeparator));
        assert_eq!(split(",123456", &c), Err(SplitError::EmptyPassword));
        assert_eq!(split("secret,", &c), Err(SplitError::EmptyOtp));
        assert_eq!(split("secret,123456,", &c), Err(SplitError::EmptyOtp));
        // otp_length is not enforced with a separator: verification judges the code.
        assert_eq!(split("secret,12", &c), ok("secret", "12"));
    }

    #[test]
    fn separator_first() {
        let c = cfg(",", OtpPosition::First, 6);
        assert_eq!(split("123456,secret", &c), ok("secret", "123456"));
        assert_eq!(split("123456,se,cr,et", &c), ok("se,cr,et", "123456"));
        assert_eq!(split("123456secret", &c), Err(SplitError::NoSeparator));
        assert_eq!(split("123456,", &c), Err(SplitError::EmptyPassword));
        assert_eq!(split(",secret", &c), Err(SplitError::EmptyOtp));
    }

    #[test]
    fn both_empty_reports_password_first() {
        assert_eq!(split(",", &cfg(",", OtpPosition::Last, 6)), Err(SplitError::EmptyPassword));
        assert_eq!(split(",", &cfg(",", OtpPosition::First, 6)), Err(SplitError::EmptyPassword));
    }

    #[test]
    fn long_separator() {
        let c = cfg("::", OtpPosition::Last, 6);
        assert_eq!(split("pass::123456", &c), ok("pass", "123456"));
        assert_eq!(split("pa::ss::123456", &c), ok("pa::ss", "123456"));
        // A single ':' is not the separator.
        assert_eq!(split("pa:ss:123456", &c), Err(SplitError::NoSeparator));
        // ":::" ends in "::" at its last position, leaving ':' in the password.
        assert_eq!(split("pass:::123456", &c), ok("pass:", "123456"));
        let c = cfg("::", OtpPosition::First, 6);
        assert_eq!(split("123456::pa::ss", &c), ok("pa::ss", "123456"));
        assert_eq!(split("123456:::pass", &c), ok(":pass", "123456"));
        let c = cfg(" OTP ", OtpPosition::Last, 6);
        assert_eq!(split("my pass OTP 123456", &c), ok("my pass", "123456"));
    }

    #[test]
    fn multibyte_separator_and_password() {
        let c = cfg("§", OtpPosition::Last, 6);
        assert_eq!(split("pässwörd§123456", &c), ok("pässwörd", "123456"));
        let c = cfg("→", OtpPosition::First, 6);
        assert_eq!(split("123456→密码", &c), ok("密码", "123456"));
    }

    #[test]
    fn fixed_length_last() {
        let c = cfg("", OtpPosition::Last, 6);
        assert_eq!(split("secret123456", &c), ok("secret", "123456"));
        assert_eq!(split("s123456", &c), ok("s", "123456"));
        assert_eq!(split("123456", &c), Err(SplitError::TooShort));
        assert_eq!(split("12345", &c), Err(SplitError::TooShort));
        assert_eq!(split("", &c), Err(SplitError::TooShort));
        let c8 = cfg("", OtpPosition::Last, 8);
        assert_eq!(split("pw12345678", &c8), ok("pw", "12345678"));
    }

    #[test]
    fn fixed_length_first() {
        let c = cfg("", OtpPosition::First, 6);
        assert_eq!(split("123456secret", &c), ok("secret", "123456"));
        assert_eq!(split("123456s", &c), ok("s", "123456"));
        assert_eq!(split("123456", &c), Err(SplitError::TooShort));
    }

    #[test]
    fn fixed_length_counts_characters() {
        // "pässwörd" is 8 characters but 10 bytes.
        let last = cfg("", OtpPosition::Last, 6);
        assert_eq!(split("pässwörd123456", &last), ok("pässwörd", "123456"));
        assert_eq!(split("ö123456", &last), ok("ö", "123456"));
        // Seven characters, more than seven bytes: long enough.
        assert_eq!(split("密码12345", &cfg("", OtpPosition::Last, 5)), ok("密码", "12345"));
        // Six characters but twelve bytes: still too short by characters.
        assert_eq!(split("密码密码密码", &last), Err(SplitError::TooShort));
        let first = cfg("", OtpPosition::First, 6);
        assert_eq!(split("123456пароль", &first), ok("пароль", "123456"));
        // Whatever the user typed, the cut falls on a character boundary.
        assert_eq!(split("😀😀😀😀😀😀😀", &first), ok("😀", "😀😀😀😀😀😀"));
        assert_eq!(split("😀😀😀😀😀😀😀", &last), ok("😀", "😀😀😀😀😀😀"));
    }

    #[test]
    fn fixed_length_zero() {
        // A zero-length code cannot be verified; report it instead of accepting.
        let c = cfg("", OtpPosition::Last, 0);
        assert_eq!(split("secret", &c), Err(SplitError::EmptyOtp));
        assert_eq!(split("", &c), Err(SplitError::TooShort));
        let c = cfg("", OtpPosition::First, 0);
        assert_eq!(split("secret", &c), Err(SplitError::EmptyOtp));
    }

    #[test]
    fn debug_is_redacted() {
        let s = split("hunter2,987654", &cfg(",", OtpPosition::Last, 6)).unwrap();
        for text in [format!("{s:?}"), format!("{s:#?}"), format!("{:?}", Ok::<_, ()>(s.clone()))] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("987654"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        assert_eq!(format!("{s:?}"), "Split { password: <redacted>, otp: <redacted> }");
    }

    #[test]
    fn error_messages() {
        assert_eq!(SplitError::NoSeparator.to_string(), "no separator between password and code");
        for e in [SplitError::EmptyPassword, SplitError::EmptyOtp, SplitError::TooShort] {
            assert!(!e.to_string().is_empty());
        }
    }
}

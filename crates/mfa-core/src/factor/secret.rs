//! A token's shared secret: never shown by Debug or Display, wiped when dropped,
//! written as RFC 4648 base32 (the form of the token file and of otpauth:// URIs).

use std::fmt;
use std::sync::OnceLock;

use data_encoding::{Encoding, BASE32_NOPAD};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The shortest secret a token file may hold: 80 bits, because many deployed
/// tokens use them. Below [`ENROLL_MIN_SECRET_BYTES`] it loads with a warning.
pub const MIN_SECRET_BYTES: usize = 10;
/// The shortest secret enrollment accepts: RFC 4226 section 4's 128 bits.
pub const ENROLL_MIN_SECRET_BYTES: usize = 16;
/// Length of the secrets `mfa-admin enroll` generates (RFC 4226's 160 bits).
pub const NEW_SECRET_BYTES: usize = 20;

/// Why a secret could not be had. Names the problem, never the text.
#[derive(Debug)]
pub enum SecretError {
    /// The text is not a usable secret.
    Invalid(&'static str),
    /// The operating system's random source failed.
    Random(String),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Invalid(reason) => f.write_str(reason),
            SecretError::Random(reason) => write!(f, "the system random number generator failed: {reason}"),
        }
    }
}

impl std::error::Error for SecretError {}

/// A token's shared secret. Its bytes never appear in Debug or Display output.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

/// RFC 4648 base32 without padding that tolerates non-zero bits in the last
/// character: some generators leave them, and RFC 4648 lets decoders accept them.
fn base32() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = BASE32_NOPAD.specification();
        spec.check_trailing_bits = false;
        spec.encoding().expect("base32 specification is valid")
    })
}

impl Secret {
    /// Decodes base32, ignoring case, whitespace and trailing `=` padding.
    pub fn from_base32(text: &str) -> Result<Secret, SecretError> {
        let mut cleaned: Vec<u8> =
            text.bytes().filter(|b| !b.is_ascii_whitespace()).map(|b| b.to_ascii_uppercase()).collect();
        let unpadded = cleaned.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        let decoded = base32().decode(&cleaned[..unpadded]);
        // The cleaned copy is the secret too; do not leave it in freed memory.
        cleaned.fill(0);
        let bytes = decoded.map_err(|_| SecretError::Invalid("the secret is not valid base32"))?;
        let secret = Secret(bytes);
        if secret.0.len() < MIN_SECRET_BYTES {
            return Err(SecretError::Invalid("the secret is too short (at least 10 bytes, 16 base32 characters)"));
        }
        Ok(secret)
    }

    /// Wraps raw bytes (for tests and tools that already hold the key).
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// `len` bytes from the operating system's random source.
    pub fn generate(len: usize) -> Result<Secret, SecretError> {
        let mut bytes = vec![0u8; len];
        getrandom::getrandom(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Secret(bytes))
    }

    /// Unpadded upper-case base32, the form authenticator apps expect.
    pub fn to_base32(&self) -> String {
        base32().encode(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: black_box keeps the optimizer from dropping the wipe.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base32())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl Visitor<'_> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base32 secret")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Secret, E> {
                // The message names the problem, never the text.
                Secret::from_base32(text).map_err(|e| E::custom(format_args!("field \"secret\": {e}")))
            }
        }
        deserializer.deserialize_str(SecretVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_lenient_about_case_spaces_and_padding() {
        let want = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        for text in ["jbswy3dpehpk3pxp", "JBSW Y3DP EHPK 3PXP", "JBSWY3DPEHPK3PXP======"] {
            assert_eq!(Secret::from_base32(text).unwrap().as_bytes(), want.as_bytes(), "{text}");
        }
        assert_eq!(want.to_base32(), "JBSWY3DPEHPK3PXP");
        let odd = Secret::from_bytes(b"12345678901".to_vec()); // 11 bytes: not a multiple of 5
        assert!(!odd.to_base32().contains('='));
        assert_eq!(Secret::from_base32(&odd.to_base32()).unwrap().as_bytes(), odd.as_bytes());
        assert!(Secret::from_base32("JBSW=Y3DPEHPK3PXP").is_err());
        assert!(Secret::from_base32("").is_err());
        let random = Secret::generate(NEW_SECRET_BYTES).unwrap();
        assert_eq!(random.len(), NEW_SECRET_BYTES);
        assert_ne!(random.as_bytes(), Secret::generate(NEW_SECRET_BYTES).unwrap().as_bytes());
    }
}

//! RFC 4226 HOTP and RFC 6238 TOTP primitives: code generation, the search
//! windows used for verification, HOTP resynchronisation and constant-time
//! comparison.
//!
//! Everything here is pure: no clock, no state. Callers pass the current time
//! and the stored counter / last step, and persist what these functions return.
//! Arithmetic on counters and steps saturates, so that a window around step 0
//! or a counter near `u64::MAX` never panics or wraps around.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The HMAC hash function of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// Parses an algorithm name, ignoring case and accepting the hyphenated
    /// spellings ("SHA-256") that administrators commonly type.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" | "sha-1" => Some(Self::Sha1),
            "sha256" | "sha-256" => Some(Self::Sha256),
            "sha512" | "sha-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The name as written in `otpauth://` URIs and in the token file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// Fewest digits RFC 4226 allows in a code.
pub const MIN_DIGITS: u32 = 6;
/// Most digits supported; 8 is the largest length authenticator apps produce.
pub const MAX_DIGITS: u32 = 8;

/// A token's HMAC with the key set up once: HMAC's inner and outer padded key
/// blocks are hashed when it is made, and each code then costs a copy of that
/// state and the counter's two blocks, not the key's set-up again (a window of
/// three steps costs three codes, not three key set-ups).
#[derive(Clone)]
enum KeyedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

/// RFC 4226 section 5.3 dynamic truncation of the HMAC of the 8-byte big-endian counter.
fn truncate_mac<M: Mac + Clone>(keyed: &M, counter: u64) -> u32 {
    let mut mac = keyed.clone();
    mac.update(&counter.to_be_bytes());
    dynamic_truncation(&mac.finalize().into_bytes())
}

impl KeyedMac {
    fn new(secret: &[u8], alg: Algorithm) -> Self {
        // HMAC hashes over-long keys and pads short ones, so every key length is valid.
        const ANY: &str = "HMAC accepts keys of any length";
        match alg {
            Algorithm::Sha1 => Self::Sha1(<Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect(ANY)),
            Algorithm::Sha256 => Self::Sha256(<Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect(ANY)),
            Algorithm::Sha512 => Self::Sha512(<Hmac<Sha512> as KeyInit>::new_from_slice(secret).expect(ANY)),
        }
    }

    fn truncated(&self, counter: u64) -> u32 {
        match self {
            Self::Sha1(m) => truncate_mac(m, counter),
            Self::Sha256(m) => truncate_mac(m, counter),
            Self::Sha512(m) => truncate_mac(m, counter),
        }
    }
}

/// The codes of one token: its keyed HMAC and its number of digits, made once
/// per check and asked for as many counters as the window holds.
#[derive(Clone)]
pub struct Codes {
    mac: KeyedMac,
    digits: u32,
}

impl Codes {
    pub fn new(secret: &[u8], digits: u32, alg: Algorithm) -> Self {
        Self { mac: KeyedMac::new(secret, alg), digits }
    }

    /// The numeric HOTP value at `counter`: the truncated HMAC modulo 10^digits.
    pub fn value(&self, counter: u64) -> u32 {
        let value = u64::from(self.mac.truncated(counter));
        // A 31-bit value is below 10^10, so ten or more digits leave it unchanged;
        // checked_pow keeps absurd digit counts from overflowing.
        match 10u64.checked_pow(self.digits) {
            // The remainder is at most the 31-bit value itself, so it fits in u32.
            Some(modulus) => (value % modulus) as u32,
            None => value as u32,
        }
    }

    /// The code as the user types it: zero-padded to `digits` characters.
    pub fn code(&self, counter: u64) -> String {
        format!("{:0width$}", self.value(counter), width = self.digits as usize)
    }

    /// Whether `given` (already a number, see [`Given`]) is the code at `counter`,
    /// compared in constant time.
    fn matches(&self, counter: u64, given: &Given) -> bool {
        u64::from(self.value(counter)).ct_eq(&given.0).into()
    }
}

/// A code as typed, read once as a number: exactly `digits` ASCII digits, so
/// that comparing numbers is comparing the zero-padded strings.
struct Given(u64);

impl Given {
    /// None when `given` is not exactly `digits` ASCII digits, or a number no code
    /// can be (more than u64 holds; every code is below 2^31).
    fn parse(given: &str, digits: u32) -> Option<Self> {
        if !is_well_formed(given, digits) {
            return None;
        }
        given.bytes().try_fold(0u64, |n, b| n.checked_mul(10)?.checked_add(u64::from(b - b'0'))).map(Self)
    }
}

/// HMAC of the 8-byte big-endian counter, keyed with the secret (the RFC's tables).
#[cfg(test)]
fn hmac_digest(secret: &[u8], counter: u64, alg: Algorithm) -> Vec<u8> {
    fn with<M: Mac + KeyInit>(secret: &[u8], counter: u64) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(secret).expect("any key length");
        mac.update(&counter.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        Algorithm::Sha1 => with::<Hmac<Sha1>>(secret, counter),
        Algorithm::Sha256 => with::<Hmac<Sha256>>(secret, counter),
        Algorithm::Sha512 => with::<Hmac<Sha512>>(secret, counter),
    }
}

/// RFC 4226 section 5.3 dynamic truncation: the low nibble of the last byte
/// picks four bytes, read as a big-endian number without the sign bit.
/// RFC 6238 applies the same rule to the longer SHA-2 digests.
fn dynamic_truncation(digest: &[u8]) -> u32 {
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]])
}

/// The 31-bit truncated value before reduction to `digits` digits.
#[cfg(test)]
fn truncated(secret: &[u8], counter: u64, alg: Algorithm) -> u32 {
    KeyedMac::new(secret, alg).truncated(counter)
}

/// The numeric HOTP value: the truncated HMAC modulo 10^digits.
pub fn hotp_value(secret: &[u8], counter: u64, digits: u32, alg: Algorithm) -> u32 {
    Codes::new(secret, digits, alg).value(counter)
}

/// The HOTP code as the user types it: zero-padded to `digits` characters.
pub fn hotp_code(secret: &[u8], counter: u64, digits: u32, alg: Algorithm) -> String {
    Codes::new(secret, digits, alg).code(counter)
}

/// The RFC 6238 time step with T0 = 0. A period of 0 is treated as 1 rather
/// than dividing by zero; configuration validation should reject it earlier.
pub fn totp_step(unix_time: u64, period: u64) -> u64 {
    unix_time / period.max(1)
}

/// Compares two codes in time independent of where they differ, so that
/// response timing reveals nothing about the expected code. A length mismatch
/// returns false (the length of a code is not secret).
pub fn code_matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// True when `given` is exactly `digits` ASCII digits. Checked on bytes so that
/// other Unicode digits ('٣') and multi-byte characters are rejected.
pub fn is_well_formed(given: &str, digits: u32) -> bool {
    usize::try_from(digits).is_ok_and(|d| d == given.len()) && given.bytes().all(|b| b.is_ascii_digit())
}

/// Counter in `[next_counter, next_counter + look_ahead]` whose code equals
/// `given`, lowest first.
///
/// Stopping at the first match is safe: which counter matched becomes visible
/// anyway through the counter the caller stores.
pub fn find_hotp(
    secret: &[u8],
    alg: Algorithm,
    digits: u32,
    next_counter: u64,
    look_ahead: u64,
    given: &str,
) -> Option<u64> {
    // A malformed code can never match: rejected before any HMAC is computed.
    let given = Given::parse(given, digits)?;
    let codes = Codes::new(secret, digits, alg);
    let last = next_counter.saturating_add(look_ahead);
    (next_counter..=last).find(|&c| codes.matches(c, &given))
}

/// Highest step in `[step(now) - window, step(now) + window]` that is strictly
/// greater than `after_step` (None = no step used yet) and whose code equals
/// `given`.
///
/// The highest match wins, so that accepting a code also retires every older
/// step it could collide with.
#[allow(clippy::too_many_arguments)] // mirrors the token's fields; a struct would only rename them
pub fn find_totp(
    secret: &[u8],
    alg: Algorithm,
    digits: u32,
    period: u64,
    now: u64,
    window: u64,
    after_step: Option<u64>,
    given: &str,
) -> Option<u64> {
    let given = Given::parse(given, digits)?;
    let current = totp_step(now, period);
    let mut first = current.saturating_sub(window);
    let last = current.saturating_add(window);
    if let Some(used) = after_step {
        // Replay protection: a step at or below the last accepted one is never
        // accepted again. No step exceeds u64::MAX, hence the early None.
        first = first.max(used.checked_add(1)?);
    }
    // Highest first, stopping at the first match: that match is the highest, and
    // which step it was shows anyway in the step the caller stores. A code of the
    // current step costs two HMACs with a window of 1, a wrong code all of them.
    let codes = Codes::new(secret, digits, alg);
    (first..=last).rev().find(|&step| codes.matches(step, &given))
}

/// HOTP resynchronisation from two consecutive codes: finds the lowest `c` in
/// `[next_counter, next_counter + search)` with code(c) == `code1` and
/// code(c + 1) == `code2`, and returns `c + 2`, the new next counter.
///
/// Requiring two consecutive codes makes a lucky guess over a wide search
/// range about 10^digits times less likely than with one code.
pub fn hotp_resync(
    secret: &[u8],
    alg: Algorithm,
    digits: u32,
    next_counter: u64,
    search: u64,
    code1: &str,
    code2: &str,
) -> Option<u64> {
    let (code1, code2) = (Given::parse(code1, digits)?, Given::parse(code2, digits)?);
    let codes = Codes::new(secret, digits, alg);
    let end = next_counter.saturating_add(search);
    // c < end <= u64::MAX, so c + 1 cannot overflow; c + 2 can, and a counter
    // that cannot advance past code2 must not be returned (it would allow replay).
    (next_counter..end)
        .find(|&c| codes.matches(c, &code1) && codes.matches(c + 1, &code2))
        .and_then(|c| c.checked_add(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC4226_SECRET: &[u8] = b"12345678901234567890";
    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4226 appendix D: counter, HMAC-SHA-1, truncated (hex and decimal), HOTP.
    #[rustfmt::skip] // one RFC table row per line
    const RFC4226: [(u64, &str, u32, u32, &str); 10] = [
        (0, "cc93cf18508d94934c64b65d8ba7667fb7cde4b0", 0x4c93cf18, 1284755224, "755224"),
        (1, "75a48a19d4cbe100644e8ac1397eea747a2d33ab", 0x41397eea, 1094287082, "287082"),
        (2, "0bacb7fa082fef30782211938bc1c5e70416ff44", 0x082fef30, 137359152, "359152"),
        (3, "66c28227d03a2d5529262ff016a1e6ef76557ece", 0x66ef7655, 1726969429, "969429"),
        (4, "a904c900a64b35909874b33e61c5938a8e15ed1c", 0x61c5938a, 1640338314, "338314"),
        (5, "a37e783d7b7233c083d4f62926c7a25f238d0316", 0x33c083d4, 868254676, "254676"),
        (6, "bc9cd28561042c83f219324d3c607256c03272ae", 0x7256c032, 1918287922, "287922"),
        (7, "a4fb960c0bc06e1eabb804e5b397cdc4b45596fa", 0x04e5b397, 82162583, "162583"),
        (8, "1b3c89f65e6c9e883012052823443f048b4332db", 0x2823443f, 673399871, "399871"),
        (9, "1637409809a679dc698207310c8c7fc07290d9e5", 0x2679dc69, 645520489, "520489"),
    ];

    #[test]
    fn rfc4226_hmac_values() {
        for (counter, mac, ..) in RFC4226 {
            assert_eq!(hex(&hmac_digest(RFC4226_SECRET, counter, Algorithm::Sha1)), mac);
        }
    }

    #[test]
    fn rfc4226_truncated_values() {
        for (counter, _, trunc_hex, trunc_dec, _) in RFC4226 {
            assert_eq!(trunc_hex, trunc_dec, "table consistency at {counter}");
            assert_eq!(truncated(RFC4226_SECRET, counter, Algorithm::Sha1), trunc_dec);
        }
    }

    #[test]
    fn rfc4226_hotp_codes() {
        for (counter, _, _, _, code) in RFC4226 {
            assert_eq!(hotp_code(RFC4226_SECRET, counter, 6, Algorithm::Sha1), code);
            assert_eq!(hotp_value(RFC4226_SECRET, counter, 6, Algorithm::Sha1), code.parse::<u32>().unwrap());
        }
    }

    /// RFC 6238 appendix B: time, step (T), and the 8-digit codes.
    #[rustfmt::skip] // one RFC table row per line
    const RFC6238: [(u64, u64, &str, &str, &str); 6] = [
        (59, 0x1, "94287082", "46119246", "90693936"),
        (1111111109, 0x23523EC, "07081804", "68084774", "25091201"),
        (1111111111, 0x23523ED, "14050471", "67062674", "99943326"),
        (1234567890, 0x273EF07, "89005924", "91819424", "93441116"),
        (2000000000, 0x3F940AA, "69279037", "90698825", "38618901"),
        (20000000000, 0x27BC86AA, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn rfc6238_vectors() {
        for (time, step, sha1, sha256, sha512) in RFC6238 {
            assert_eq!(totp_step(time, 30), step, "step at {time}");
            assert_eq!(hotp_code(SEED_SHA1, step, 8, Algorithm::Sha1), sha1, "SHA1 at {time}");
            assert_eq!(hotp_code(SEED_SHA256, step, 8, Algorithm::Sha256), sha256, "SHA256 at {time}");
            assert_eq!(hotp_code(SEED_SHA512, step, 8, Algorithm::Sha512), sha512, "SHA512 at {time}");
        }
    }

    #[test]
    fn rfc6238_vectors_through_find_totp() {
        for (time, step, sha1, sha256, sha512) in RFC6238 {
            for (seed, alg, code) in [
                (SEED_SHA1, Algorithm::Sha1, sha1),
                (SEED_SHA256, Algorithm::Sha256, sha256),
                (SEED_SHA512, Algorithm::Sha512, sha512),
            ] {
                assert_eq!(find_totp(seed, alg, 8, 30, time, 0, None, code), Some(step));
            }
        }
    }

    #[test]
    fn zero_padding_and_value() {
        // Counter 7 truncates to 82162583: eight digits keep the leading zero.
        assert_eq!(hotp_value(RFC4226_SECRET, 7, 8, Algorithm::Sha1), 82162583);
        assert_eq!(hotp_code(RFC4226_SECRET, 7, 8, Algorithm::Sha1), "82162583");
        // 1111111109 with SHA1 is "07081804": value 7081804, padded back to 8.
        assert_eq!(hotp_value(SEED_SHA1, 0x23523EC, 8, Algorithm::Sha1), 7081804);
        assert_eq!(hotp_code(SEED_SHA1, 0x23523EC, 8, Algorithm::Sha1), "07081804");
        assert_eq!(hotp_code(RFC4226_SECRET, 0, 7, Algorithm::Sha1), "4755224");
    }

    /// The keyed HMAC made once gives, counter after counter, what a fresh HMAC
    /// per counter gives (the clone must not carry one counter into the next).
    #[test]
    fn keyed_mac_reused_across_counters_equals_a_fresh_one() {
        for (seed, alg) in [
            (SEED_SHA1, Algorithm::Sha1),
            (SEED_SHA256, Algorithm::Sha256),
            (SEED_SHA512, Algorithm::Sha512),
            (&[7u8; 100][..], Algorithm::Sha1), // longer than a block: hashed first
        ] {
            let codes = Codes::new(seed, 8, alg);
            for counter in (0..50).chain([u64::MAX - 1, u64::MAX]) {
                assert_eq!(codes.mac.truncated(counter), dynamic_truncation(&hmac_digest(seed, counter, alg)));
                assert_eq!(codes.value(counter), codes.value(counter), "the same twice");
            }
        }
    }

    /// Codes compared as numbers: leading zeros count as digits, and a code is
    /// exactly `digits` characters long, so "0755224" is not "755224".
    #[test]
    fn numeric_comparison_keeps_the_string_rules() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        // Counter 7 is 82162583 with 8 digits; with 9 it is padded to 082162583.
        assert_eq!(find_hotp(s, a, 9, 0, 9, "082162583"), Some(7));
        assert_eq!(find_hotp(s, a, 8, 0, 9, "082162583"), None);
        assert_eq!(find_hotp(s, a, 9, 0, 9, "82162583"), None);
        assert_eq!(find_hotp(s, a, 6, 0, 0, "0755224"), None);
        // SHA1 at 1111111109 is "07081804": the leading zero is part of the code.
        assert_eq!(find_totp(SEED_SHA1, a, 8, 30, 1111111109, 0, None, "07081804"), Some(0x23523EC));
        assert_eq!(find_totp(SEED_SHA1, a, 7, 30, 1111111109, 0, None, "7081804"), Some(0x23523EC));
        // Ten digits: the 31-bit value itself, unreduced.
        assert_eq!(find_hotp(s, a, 10, 0, 0, "1284755224"), Some(0));
        // More digits than a u64 holds: no match, no panic.
        let nines = "9".repeat(25);
        assert_eq!(find_hotp(s, a, 25, 0, 3, &nines), None);
        let zeros = format!("{:0>25}", "1284755224");
        assert_eq!(find_hotp(s, a, 25, 0, 0, &zeros), Some(0));
        // Resync reads both codes the same way.
        assert_eq!(hotp_resync(s, a, 6, 0, 10, "254676", "287922"), Some(7));
        assert_eq!(hotp_resync(s, a, 6, 0, 10, "254676", "0287922"), None);
    }

    #[test]
    fn absurd_digit_counts_do_not_panic() {
        assert_eq!(hotp_value(RFC4226_SECRET, 0, 10, Algorithm::Sha1), 1284755224);
        assert_eq!(hotp_value(RFC4226_SECRET, 0, 40, Algorithm::Sha1), 1284755224);
        assert_eq!(find_hotp(RFC4226_SECRET, Algorithm::Sha1, u32::MAX, 0, 5, "755224"), None);
    }

    #[test]
    fn algorithm_parse_and_name() {
        for s in ["sha1", "SHA1", "Sha1", "sha-1", "SHA-1"] {
            assert_eq!(Algorithm::parse(s), Some(Algorithm::Sha1), "{s}");
        }
        for s in ["sha256", "SHA256", "sha-256", "SHA-256"] {
            assert_eq!(Algorithm::parse(s), Some(Algorithm::Sha256), "{s}");
        }
        for s in ["sha512", "SHA512", "sha-512", "SHA-512"] {
            assert_eq!(Algorithm::parse(s), Some(Algorithm::Sha512), "{s}");
        }
        for s in ["", "md5", "sha", "sha384", "sha-", "sha1 ", "sha--1", "sha_1"] {
            assert_eq!(Algorithm::parse(s), None, "{s:?}");
        }
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(Algorithm::parse(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::Sha1.name(), "SHA1");
        assert_eq!(Algorithm::Sha256.name(), "SHA256");
        assert_eq!(Algorithm::Sha512.name(), "SHA512");
    }

    #[test]
    fn algorithm_serde_names_match_name() {
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.name()));
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), alg);
        }
    }

    #[test]
    fn totp_step_rules() {
        assert_eq!(totp_step(0, 30), 0);
        assert_eq!(totp_step(29, 30), 0);
        assert_eq!(totp_step(30, 30), 1);
        assert_eq!(totp_step(u64::MAX, 1), u64::MAX);
        assert_eq!(totp_step(100, 60), 1);
        // Period 0 is treated as 1 instead of panicking.
        assert_eq!(totp_step(100, 0), 100);
    }

    #[test]
    fn code_matches_rules() {
        assert!(code_matches("123456", "123456"));
        assert!(!code_matches("123456", "123457"));
        assert!(!code_matches("123456", "023456"));
        assert!(!code_matches("123456", "12345"));
        assert!(!code_matches("123456", "1234567"));
        assert!(!code_matches("123456", ""));
        assert!(code_matches("", ""));
    }

    #[test]
    fn well_formed_rules() {
        assert!(is_well_formed("123456", 6));
        assert!(is_well_formed("00000000", 8));
        assert!(!is_well_formed("12345", 6));
        assert!(!is_well_formed("1234567", 6));
        assert!(!is_well_formed("", 6));
        assert!(!is_well_formed("12345a", 6));
        assert!(!is_well_formed("abcdef", 6));
        assert!(!is_well_formed("123 456", 6));
        assert!(!is_well_formed(" 123456", 7));
        assert!(!is_well_formed("123456\n", 7));
        assert!(!is_well_formed("-12345", 6));
        assert!(!is_well_formed("+12345", 6));
        // Arabic-Indic and fullwidth digits are digits to Unicode, not to us;
        // "12345٣" is 7 bytes, "٣٣٣" is 6 bytes.
        assert!(!is_well_formed("12345٣", 6));
        assert!(!is_well_formed("12345٣", 7));
        assert!(!is_well_formed("٣٣٣", 6));
        assert!(!is_well_formed("１２３４５６", 6));
    }

    fn code(counter: u64) -> String {
        hotp_code(RFC4226_SECRET, counter, 6, Algorithm::Sha1)
    }

    /// The first two counters below 5000 that share a 6-digit code; by the
    /// birthday bound several such pairs exist in that range.
    fn first_collision() -> (u64, u64) {
        let mut seen = std::collections::HashMap::new();
        for c in 0..5000u64 {
            if let Some(&earlier) = seen.get(&code(c)) {
                return (earlier, c);
            }
            seen.insert(code(c), c);
        }
        panic!("no 6-digit collision below 5000");
    }

    #[test]
    fn find_hotp_window() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        // At the expected counter.
        assert_eq!(find_hotp(s, a, 6, 0, 0, "755224"), Some(0));
        // Ahead within the look-ahead, including its last counter.
        assert_eq!(find_hotp(s, a, 6, 0, 9, "520489"), Some(9));
        assert_eq!(find_hotp(s, a, 6, 3, 2, "254676"), Some(5));
        // One past the look-ahead.
        assert_eq!(find_hotp(s, a, 6, 0, 8, "520489"), None);
        // Below next_counter: already used, never accepted again.
        assert_eq!(find_hotp(s, a, 6, 1, 20, "755224"), None);
        // Wrong code, malformed code.
        assert_eq!(find_hotp(s, a, 6, 0, 9, "000000"), None);
        assert_eq!(find_hotp(s, a, 6, 0, 9, "75522"), None);
        assert_eq!(find_hotp(s, a, 6, 0, 9, "7552240"), None);
        // Wrong algorithm or digit count.
        assert_eq!(find_hotp(s, Algorithm::Sha256, 6, 0, 9, "755224"), None);
        assert_eq!(find_hotp(s, a, 8, 0, 9, "755224"), None);
    }

    #[test]
    fn find_hotp_lowest_first() {
        // Two counters with the same code, both inside the look-ahead.
        let s = RFC4226_SECRET;
        let (lo, hi) = first_collision();
        let given = code(lo);
        assert_eq!(find_hotp(s, Algorithm::Sha1, 6, lo, hi - lo, &given), Some(lo));
        assert_eq!(find_hotp(s, Algorithm::Sha1, 6, lo + 1, hi - lo, &given), Some(hi));
    }

    #[test]
    fn find_hotp_near_u64_max() {
        let s = RFC4226_SECRET;
        let top = u64::MAX;
        let given = code(top);
        assert_eq!(find_hotp(s, Algorithm::Sha1, 6, top - 2, 10, &given), Some(top));
        assert_eq!(find_hotp(s, Algorithm::Sha1, 6, top, u64::MAX, &given), Some(top));
    }

    #[test]
    fn find_totp_window_both_sides() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        let now = 1000 * 30 + 7; // step 1000
        for step in 998..=1002 {
            assert_eq!(find_totp(s, a, 6, 30, now, 2, None, &code(step)), Some(step), "{step}");
        }
        assert_eq!(find_totp(s, a, 6, 30, now, 2, None, &code(997)), None);
        assert_eq!(find_totp(s, a, 6, 30, now, 2, None, &code(1003)), None);
        // Window 0: only the current step.
        assert_eq!(find_totp(s, a, 6, 30, now, 0, None, &code(1000)), Some(1000));
        assert_eq!(find_totp(s, a, 6, 30, now, 0, None, &code(999)), None);
        // Malformed input.
        assert_eq!(find_totp(s, a, 6, 30, now, 2, None, "abcdef"), None);
        assert_eq!(find_totp(s, a, 6, 30, now, 2, None, ""), None);
    }

    #[test]
    fn find_totp_replay_boundary() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        let now = 1000 * 30; // step 1000
        let c = code(1000);
        // Fresh, and after an older step.
        assert_eq!(find_totp(s, a, 6, 30, now, 1, Some(999), &c), Some(1000));
        // The step itself, or anything later, was already used.
        assert_eq!(find_totp(s, a, 6, 30, now, 1, Some(1000), &c), None);
        assert_eq!(find_totp(s, a, 6, 30, now, 1, Some(1001), &c), None);
        // A future step in the window stays usable after the current one is used.
        assert_eq!(find_totp(s, a, 6, 30, now, 1, Some(1000), &code(1001)), Some(1001));
        // after_step far beyond the window, and at u64::MAX.
        assert_eq!(find_totp(s, a, 6, 30, now, 1, Some(5000), &c), None);
        assert_eq!(find_totp(s, a, 6, 30, now, 1, Some(u64::MAX), &c), None);
    }

    #[test]
    fn find_totp_chooses_highest_match() {
        // Two steps inside one window that share a code.
        let (lo, hi) = first_collision();
        let given = code(lo);
        let now = lo * 30; // current step = lo, window reaches hi
        let window = hi - lo;
        let found = find_totp(RFC4226_SECRET, Algorithm::Sha1, 6, 30, now, window, None, &given);
        assert_eq!(found, Some(hi));
        // With the higher step used, the lower one is a replay as well.
        let again = find_totp(RFC4226_SECRET, Algorithm::Sha1, 6, 30, now, window, Some(hi), &given);
        assert_eq!(again, None);
        // With only the lower step used, the higher one is still accepted.
        let next = find_totp(RFC4226_SECRET, Algorithm::Sha1, 6, 30, now, window, Some(lo), &given);
        assert_eq!(next, Some(hi));
    }

    #[test]
    fn find_totp_saturates_at_step_zero_and_max() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        // now = 10 → step 0; a window of 5 must not underflow.
        assert_eq!(find_totp(s, a, 6, 30, 10, 5, None, &code(0)), Some(0));
        assert_eq!(find_totp(s, a, 6, 30, 10, 5, None, &code(5)), Some(5));
        assert_eq!(find_totp(s, a, 6, 30, 10, 5, None, &code(6)), None);
        // A huge window does not overflow at the top either (period 1, now at the end).
        assert_eq!(find_totp(s, a, 6, 1, u64::MAX, 3, None, &code(u64::MAX)), Some(u64::MAX));
        assert_eq!(find_totp(s, a, 6, 1, u64::MAX, 3, None, &code(u64::MAX - 3)), Some(u64::MAX - 3));
    }

    #[test]
    fn resync_found() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        // Codes for counters 5 and 6: the new next counter is 7.
        assert_eq!(hotp_resync(s, a, 6, 0, 10, "254676", "287922"), Some(7));
        // At the start of the search range.
        assert_eq!(hotp_resync(s, a, 6, 5, 1, "254676", "287922"), Some(7));
        assert_eq!(hotp_resync(s, a, 6, 0, 1, "755224", "287082"), Some(2));
    }

    #[test]
    fn resync_not_found() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        // Not consecutive (5 and 7), reversed order, garbage.
        assert_eq!(hotp_resync(s, a, 6, 0, 10, "254676", "162583"), None);
        assert_eq!(hotp_resync(s, a, 6, 0, 10, "287922", "254676"), None);
        assert_eq!(hotp_resync(s, a, 6, 0, 10, "000000", "111111"), None);
        assert_eq!(hotp_resync(s, a, 6, 0, 10, "25467", "287922"), None);
        assert_eq!(hotp_resync(s, a, 6, 0, 10, "254676", "28792x"), None);
        // Before next_counter: those counters are spent.
        assert_eq!(hotp_resync(s, a, 6, 6, 10, "254676", "287922"), None);
        // Empty search range.
        assert_eq!(hotp_resync(s, a, 6, 5, 0, "254676", "287922"), None);
    }

    #[test]
    fn resync_window_edge() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        // c = 5 is the last counter of [0, 6) and the first one outside [0, 5).
        assert_eq!(hotp_resync(s, a, 6, 0, 6, "254676", "287922"), Some(7));
        assert_eq!(hotp_resync(s, a, 6, 0, 5, "254676", "287922"), None);
    }

    #[test]
    fn resync_near_u64_max() {
        let s = RFC4226_SECRET;
        let a = Algorithm::Sha1;
        let top = u64::MAX;
        // c = MAX - 3 → new counter MAX - 1.
        assert_eq!(hotp_resync(s, a, 6, top - 10, u64::MAX, &code(top - 3), &code(top - 2)), Some(top - 1));
        // c = MAX - 1 would need counter MAX + 1: refused rather than wrapped.
        assert_eq!(hotp_resync(s, a, 6, top - 1, u64::MAX, &code(top - 1), &code(top)), None);
    }
}

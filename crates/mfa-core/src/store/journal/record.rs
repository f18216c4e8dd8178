//! One line of the journal: an idempotent "set" record in JSON (the kinds are
//! listed in docs/DESIGN.md), written by one `write()` each.

use std::borrow::Cow;

use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

/// One line of the journal, as written. Written by hand ([`Record::write_line`]);
/// the tests check that it is byte for byte what serde_json writes for the enum.
#[cfg_attr(test, derive(Serialize), serde(tag = "k", rename_all = "lowercase"))]
pub(super) enum Record<'a> {
    Totp {
        u: &'a str,
        s: &'a str,
        v: u64,
    },
    Hotp {
        u: &'a str,
        s: &'a str,
        v: u64,
    },
    Lock {
        u: &'a str,
        f: u32,
        until: u64,
    },
    Unlock {
        u: &'a str,
    },
    Forget {
        u: &'a str,
    },
    /// A challenge's State answered by `u`: `s` its id (32 hex digits), `v` when it expires.
    Used {
        u: &'a str,
        s: &'a str,
        v: u64,
    },
}

impl Record<'_> {
    /// Appends the record and its newline to `out`: the JSON object serde_json
    /// would write for it, without serde's generic path (one of these is written
    /// per accepted code).
    pub(super) fn write_line(&self, out: &mut Vec<u8>) {
        let (kind, u) = match self {
            Record::Totp { u, .. } => ("totp", u),
            Record::Hotp { u, .. } => ("hotp", u),
            Record::Lock { u, .. } => ("lock", u),
            Record::Unlock { u } => ("unlock", u),
            Record::Forget { u } => ("forget", u),
            Record::Used { u, .. } => ("used", u),
        };
        out.extend_from_slice(b"{\"k\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"u\":");
        json_string(out, u);
        match self {
            Record::Totp { s, v, .. } | Record::Hotp { s, v, .. } | Record::Used { s, v, .. } => {
                out.extend_from_slice(b",\"s\":");
                json_string(out, s);
                out.extend_from_slice(b",\"v\":");
                json_number(out, *v);
            }
            Record::Lock { f, until, .. } => {
                out.extend_from_slice(b",\"f\":");
                json_number(out, u64::from(*f));
                out.extend_from_slice(b",\"until\":");
                json_number(out, *until);
            }
            Record::Unlock { .. } | Record::Forget { .. } => {}
        }
        out.extend_from_slice(b"}\n");
    }

    /// The record as one line, newline included.
    pub(super) fn line(&self) -> Vec<u8> {
        // Room for the longest record with short names, so that writing it does not grow it.
        let mut line = Vec::with_capacity(96);
        self.write_line(&mut line);
        line
    }
}

/// A JSON string, escaped as serde_json escapes: `"` and `\\`, the short forms of
/// \b \f \n \r \t, every other control character as \u00XX; the rest as it is (UTF-8).
fn json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Names as they nearly always are: nothing to escape.
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => {
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// A number in decimal.
fn json_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// One line of the journal, as read: flat, so parsing needs no buffering of
/// the tagged enum; unknown extra fields are ignored so that a newer writer's
/// additions do not stop an older reader.
#[derive(Deserialize)]
pub(super) struct RawRecord<'a> {
    #[serde(borrow)]
    k: Cow<'a, str>,
    #[serde(borrow)]
    u: Cow<'a, str>,
    #[serde(borrow, default)]
    s: Option<Cow<'a, str>>,
    #[serde(default)]
    v: Option<u64>,
    #[serde(default)]
    f: Option<u32>,
    #[serde(default)]
    until: Option<u64>,
}

impl<'a> RawRecord<'a> {
    pub(super) fn record(&'a self) -> Result<Record<'a>, String> {
        let u = &*self.u;
        let s = || self.s.as_deref().ok_or("field \"s\" is missing");
        let v = || self.v.ok_or("field \"v\" is missing");
        Ok(match &*self.k {
            "totp" => Record::Totp { u, s: s()?, v: v()? },
            "hotp" => Record::Hotp { u, s: s()?, v: v()? },
            "lock" => Record::Lock {
                u,
                f: self.f.ok_or("field \"f\" is missing")?,
                until: self.until.ok_or("field \"until\" is missing")?,
            },
            "unlock" => Record::Unlock { u },
            "forget" => Record::Forget { u },
            "used" => {
                let s = s()?;
                if state_id(s).is_none() {
                    return Err("field \"s\" is not a State id".into());
                }
                Record::Used { u, s, v: v()? }
            }
            other => return Err(format!("unknown record kind {other:?}")),
        })
    }
}

/// A State id as the journal writes it (32 lower-case hex digits), or None.
pub(super) fn state_id(hex: &str) -> Option<[u8; 16]> {
    let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Result<String, String> {
        let raw: RawRecord<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
        raw.record().map(|record| String::from_utf8(record.line()).unwrap())
    }

    #[test]
    fn each_kind_reads_back_as_written() {
        for record in [
            Record::Totp { u: "alice", s: "T\"1", v: 42 },
            Record::Hotp { u: "alice", s: "H1", v: 3 },
            Record::Lock { u: "bob", f: 2, until: 9 },
            Record::Unlock { u: "bob" },
            Record::Forget { u: "x" },
            Record::Used { u: "carol", s: "00112233445566778899aabbccddeeff", v: 1_700_000_180 },
        ] {
            let line = String::from_utf8(record.line()).unwrap();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "{line:?}");
            assert_eq!(read(&line).unwrap(), line);
        }
    }

    /// The hand-written line is what serde_json writes, for every kind and for
    /// names that need escaping (quotes, backslashes, control characters, UTF-8).
    #[test]
    fn lines_are_what_serde_json_writes() {
        let names =
            ["alice", "", "a\"b\\c", "tab\there\nnl\r\u{8}\u{c}", "\u{0}\u{1}\u{1f}\u{7f}", "jörg@例え.jp", "\u{2028}"];
        for u in names {
            for s in names {
                for v in [0, 7, 1_700_000_000, u64::MAX] {
                    for record in [
                        Record::Totp { u, s, v },
                        Record::Hotp { u, s, v },
                        Record::Lock { u, f: v as u32, until: v },
                        Record::Unlock { u },
                        Record::Forget { u },
                        Record::Used { u, s, v },
                    ] {
                        let mut expected = serde_json::to_vec(&record).unwrap();
                        expected.push(b'\n');
                        assert_eq!(String::from_utf8(record.line()).unwrap(), String::from_utf8(expected).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn a_missing_field_or_unknown_kind_is_named() {
        assert_eq!(read(r#"{"k":"totp","u":"a","v":1}"#).unwrap_err(), "field \"s\" is missing");
        assert_eq!(read(r#"{"k":"lock","u":"a","f":1}"#).unwrap_err(), "field \"until\" is missing");
        assert_eq!(read(r#"{"k":"teleport","u":"a"}"#).unwrap_err(), "unknown record kind \"teleport\"");
        assert!(read(r#"{"k":"unlock"}"#).unwrap_err().contains("missing field `u`"));
        assert_eq!(read(r#"{"k":"used","u":"a","s":"0011","v":1}"#).unwrap_err(), "field \"s\" is not a State id");
    }
}

//! One line of the journal: an idempotent "set" record in JSON (the kinds are
//! listed in docs/DESIGN.md), written by one `write()` each.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One line of the journal, as written.
#[derive(Serialize)]
#[serde(tag = "k", rename_all = "lowercase")]
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
    /// Appends the record and its newline to `out`.
    pub(super) fn write_line(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(&mut *out, self).expect("records always serialize");
        out.push(b'\n');
    }

    /// The record as one line, newline included.
    pub(super) fn line(&self) -> Vec<u8> {
        let mut line = Vec::new();
        self.write_line(&mut line);
        line
    }
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

    #[test]
    fn a_missing_field_or_unknown_kind_is_named() {
        assert_eq!(read(r#"{"k":"totp","u":"a","v":1}"#).unwrap_err(), "field \"s\" is missing");
        assert_eq!(read(r#"{"k":"lock","u":"a","f":1}"#).unwrap_err(), "field \"until\" is missing");
        assert_eq!(read(r#"{"k":"teleport","u":"a"}"#).unwrap_err(), "unknown record kind \"teleport\"");
        assert!(read(r#"{"k":"unlock"}"#).unwrap_err().contains("missing field `u`"));
        assert_eq!(read(r#"{"k":"used","u":"a","s":"0011","v":1}"#).unwrap_err(), "field \"s\" is not a State id");
    }
}

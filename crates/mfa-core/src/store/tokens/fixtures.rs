//! Token files shared by the unit tests of the token file's parts.

use super::TokenDb;

pub const ALICE: &str = r#"{
  "users": {
    "alice": {
      "tokens": [
        {"serial": "TOTP-3F9A2C10", "type": "totp", "secret": "JBSWY3DPEHPK3PXP",
         "algorithm": "SHA1", "digits": 6, "period": 30, "description": "phone"},
        {"serial": "HOTP-0001", "type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
         "algorithm": "SHA1", "digits": 6}
      ]
    }
  }
}"#;

pub fn one_token(fields: &str) -> String {
    format!(
        r#"{{"users": {{"bob": {{"tokens": [{{"serial": "S1", "type": "totp",
            "secret": "JBSWY3DPEHPK3PXP"{fields}}}]}}}}}}"#
    )
}

pub fn error_of(text: &str) -> String {
    TokenDb::parse(text).unwrap_err().to_string()
}

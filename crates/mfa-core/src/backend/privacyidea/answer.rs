//! privacyIDEA's JSON answers, read into what the module decides on.
//!
//! Only `result.status`, `result.value`, `result.authentication` and a few
//! `detail` fields matter. An accept needs `value` to be exactly `true`: an
//! answer that is odd in any way is never read as an accept.

use serde_json::Value;

use crate::challenge::Transaction;
/// The longest transaction id taken: the most the sealed State has room for.
pub use crate::challenge::MAX_TRANSACTION_ID;

/// What `/validate/check` decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Accept,
    Reject,
    /// The user refused a push (privacyIDEA 3.10+ says DECLINED).
    Declined,
    Challenge(Challenge),
}

/// A challenge: one transaction for every token it was sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub transaction_id: String,
    /// privacyIDEA's text for the user ("please enter otp: ").
    pub message: String,
    /// A token of the challenge is answered out of band (push: client_mode poll).
    pub poll: bool,
    /// A token of the challenge takes a typed answer (OTP, e-mail, SMS).
    pub interactive: bool,
}

/// A `/validate/check` answer.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckAnswer {
    pub verdict: Verdict,
    /// The `detail` object, for reply-attribute mapping (user attributes, serial).
    pub detail: Value,
}

/// What `/validate/polltransaction` says of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStatus {
    Accepted,
    Declined,
    Pending,
}

/// Why an answer cannot be used. `Refused` carries privacyIDEA's own reason,
/// which goes to the log only (it can say whether a user exists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerError {
    NotJson,
    /// `result.status` is false: the server's error code and message.
    Refused {
        code: i64,
        message: String,
    },
    /// JSON, but not an answer this module can act on; says what is wrong.
    Malformed(&'static str),
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerError::NotJson => f.write_str("the answer is not JSON"),
            AnswerError::Refused { code, message } => {
                write!(f, "privacyIDEA error {code}: {}", printable(message, 200))
            }
            AnswerError::Malformed(why) => write!(f, "the answer is not usable: {why}"),
        }
    }
}

/// privacyIDEA's error code for a user it cannot find (ERR904).
pub const USER_NOT_FOUND: i64 = 904;

use crate::text::printable;

fn result_of(body: &[u8]) -> Result<(Value, Value), AnswerError> {
    let root: Value = serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
    let Value::Object(mut root) = root else { return Err(AnswerError::Malformed("not a JSON object")) };
    let result = root.remove("result").ok_or(AnswerError::Malformed("no \"result\""))?;
    let detail = root.remove("detail").unwrap_or(Value::Null);
    match result.get("status") {
        Some(Value::Bool(true)) => Ok((result, detail)),
        Some(Value::Bool(false)) => {
            let error = result.get("error");
            let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64).unwrap_or(0);
            let message = error.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or("").to_string();
            Err(AnswerError::Refused { code, message })
        }
        _ => Err(AnswerError::Malformed("\"result.status\" is not true or false")),
    }
}

/// Reads a `/validate/check` answer.
pub fn parse_check(body: &[u8]) -> Result<CheckAnswer, AnswerError> {
    let (result, detail) = result_of(body)?;
    let value_true = result.get("value") == Some(&Value::Bool(true));
    let challenge_offered = detail.get("multi_challenge").and_then(Value::as_array).is_some_and(|c| !c.is_empty())
        || detail.get("transaction_id").is_some_and(|t| !t.is_null());
    let verdict = match result.get("authentication").and_then(Value::as_str) {
        // privacyIDEA 3.7 and later.
        Some("ACCEPT") if value_true => Verdict::Accept,
        Some("ACCEPT") => return Err(AnswerError::Malformed("ACCEPT without \"value\": true")),
        Some("CHALLENGE") => Verdict::Challenge(challenge(&detail)?),
        Some("DECLINED") => Verdict::Declined,
        Some("REJECT") => Verdict::Reject,
        Some(_) => return Err(AnswerError::Malformed("unknown \"result.authentication\"")),
        // Older servers: value, else a challenge when one is described.
        None if value_true && !challenge_offered => Verdict::Accept,
        None if challenge_offered => Verdict::Challenge(challenge(&detail)?),
        None if result.get("value").is_some_and(Value::is_boolean) => Verdict::Reject,
        None => return Err(AnswerError::Malformed("\"result.value\" is not a boolean")),
    };
    Ok(CheckAnswer { verdict, detail })
}

fn challenge(detail: &Value) -> Result<Challenge, AnswerError> {
    let multi: &[Value] = detail.get("multi_challenge").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let transaction_id = detail
        .get("transaction_id")
        .and_then(Value::as_str)
        .or_else(|| multi.iter().find_map(|c| c.get("transaction_id").and_then(Value::as_str)))
        .ok_or(AnswerError::Malformed("a challenge without a transaction id"))?;
    // It travels back in the sealed State: only an id the State can carry is taken.
    if !Transaction::is_valid_id(transaction_id.as_bytes()) {
        return Err(AnswerError::Malformed("a transaction id that is empty, too long or not printable"));
    }
    // All challenges of one request share one transaction; another id is not ours to answer.
    if multi.iter().any(|c| c.get("transaction_id").and_then(Value::as_str).is_some_and(|t| t != transaction_id)) {
        return Err(AnswerError::Malformed("challenges with different transaction ids"));
    }
    let is_poll = |c: &Value| {
        c.get("client_mode").and_then(Value::as_str) == Some("poll")
            || (c.get("client_mode").is_none() && c.get("type").and_then(Value::as_str) == Some("push"))
    };
    let poll = multi.iter().any(is_poll);
    // Without the list (old servers) the challenge is taken as one to type an answer to.
    let interactive = multi.is_empty() || multi.iter().any(|c| !is_poll(c));
    let message = detail
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            let texts: Vec<&str> = multi.iter().filter_map(|c| c.get("message").and_then(Value::as_str)).collect();
            (!texts.is_empty()).then(|| texts.join(", "))
        })
        .unwrap_or_default();
    Ok(Challenge { transaction_id: transaction_id.to_string(), message, poll, interactive })
}

/// Reads a `/validate/polltransaction` answer.
pub fn parse_poll(body: &[u8]) -> Result<PollStatus, AnswerError> {
    let (result, detail) = result_of(body)?;
    let status = detail.get("challenge_status").and_then(Value::as_str);
    Ok(match (result.get("value"), status) {
        (_, Some("declined" | "cancelled")) => PollStatus::Declined,
        (Some(Value::Bool(true)), _) => PollStatus::Accepted,
        (Some(Value::Bool(false)), _) => PollStatus::Pending,
        _ => return Err(AnswerError::Malformed("\"result.value\" is not a boolean")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<CheckAnswer, AnswerError> {
        parse_check(json.as_bytes())
    }

    #[test]
    fn accept_reject_declined() {
        let a = check(r#"{"result":{"status":true,"value":true,"authentication":"ACCEPT"},"detail":{"serial":"H1"}}"#);
        assert_eq!(a.unwrap().verdict, Verdict::Accept);
        let r = check(
            r#"{"result":{"status":true,"value":false,"authentication":"REJECT"},"detail":{"message":"wrong otp pin"}}"#,
        );
        assert_eq!(r.unwrap().verdict, Verdict::Reject);
        let d = check(r#"{"result":{"status":true,"value":false,"authentication":"DECLINED"}}"#);
        assert_eq!(d.unwrap().verdict, Verdict::Declined);
        // An old server: no authentication field.
        assert_eq!(check(r#"{"result":{"status":true,"value":true}}"#).unwrap().verdict, Verdict::Accept);
        assert_eq!(check(r#"{"result":{"status":true,"value":false}}"#).unwrap().verdict, Verdict::Reject);
    }

    #[test]
    fn nothing_odd_is_an_accept() {
        for odd in [
            r#"{"result":{"status":true,"value":"true","authentication":"ACCEPT"}}"#,
            r#"{"result":{"status":true,"value":1}}"#,
            r#"{"result":{"status":"true","value":true}}"#,
            r#"{"result":{"value":true}}"#,
            r#"{"value":true}"#,
            r#"[true]"#,
            r#"{"result":{"status":true,"value":true,"authentication":"MAYBE"}}"#,
        ] {
            assert!(check(odd).is_err(), "{odd}");
        }
        assert_eq!(parse_check(b"<html>"), Err(AnswerError::NotJson));
    }

    #[test]
    fn server_errors_carry_code_and_message() {
        let e =
            check(r#"{"result":{"status":false,"error":{"code":904,"message":"ERR904: The user can not be found"}}}"#);
        assert_eq!(
            e,
            Err(AnswerError::Refused { code: USER_NOT_FOUND, message: "ERR904: The user can not be found".into() })
        );
    }

    #[test]
    fn challenges_with_push_and_otp() {
        let json = r#"{"result":{"status":true,"value":false,"authentication":"CHALLENGE"},
            "detail":{"transaction_id":"01234567890123456789","message":"please enter otp: , please confirm",
            "multi_challenge":[{"transaction_id":"01234567890123456789","type":"hotp","client_mode":"interactive","message":"please enter otp: "},
                               {"transaction_id":"01234567890123456789","type":"push","client_mode":"poll","message":"please confirm"}]}}"#;
        let Verdict::Challenge(c) = check(json).unwrap().verdict else { panic!() };
        assert_eq!(c.transaction_id, "01234567890123456789");
        assert!(c.poll && c.interactive);
        assert_eq!(c.message, "please enter otp: , please confirm");
    }

    #[test]
    fn a_challenge_needs_a_good_transaction_id() {
        let none = r#"{"result":{"status":true,"value":false,"authentication":"CHALLENGE"},"detail":{"message":"x"}}"#;
        assert!(matches!(check(none), Err(AnswerError::Malformed(_))));
        let long = format!(
            r#"{{"result":{{"status":true,"value":false,"authentication":"CHALLENGE"}},"detail":{{"transaction_id":"{}"}}}}"#,
            "1".repeat(65)
        );
        assert!(check(&long).is_err());
        let spaced = r#"{"result":{"status":true,"value":false,"authentication":"CHALLENGE"},"detail":{"transaction_id":"1 2"}}"#;
        assert!(check(spaced).is_err());
        let two = r#"{"result":{"status":true,"value":false,"authentication":"CHALLENGE"},"detail":{"transaction_id":"1",
            "multi_challenge":[{"transaction_id":"1"},{"transaction_id":"2"}]}}"#;
        assert!(check(two).is_err());
    }

    #[test]
    fn poll_states() {
        assert_eq!(
            parse_poll(br#"{"result":{"status":true,"value":true},"detail":{"challenge_status":"accept"}}"#),
            Ok(PollStatus::Accepted)
        );
        assert_eq!(
            parse_poll(br#"{"result":{"status":true,"value":false},"detail":{"challenge_status":"pending"}}"#),
            Ok(PollStatus::Pending)
        );
        assert_eq!(
            parse_poll(br#"{"result":{"status":true,"value":false},"detail":{"challenge_status":"declined"}}"#),
            Ok(PollStatus::Declined)
        );
        assert!(parse_poll(br#"{"result":{"status":true}}"#).is_err());
    }
}

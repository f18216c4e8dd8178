//! What a provider's JSON answer must say: a string `id` and one of the four
//! status words. The reasons name what is wrong without quoting the answer,
//! which could echo anything (the credential included).

use super::provider::{PushError, PushStatus};

/// The longest push id accepted from a provider.
pub(super) const MAX_ID: usize = 512;

/// The id and status of an answer.
pub fn parse_answer(answer: &[u8]) -> Result<(String, PushStatus), PushError> {
    let bad = |reason: &str| PushError::BadAnswer(reason.to_owned());
    let value: serde_json::Value = serde_json::from_slice(answer).map_err(|_| bad("it is not JSON"))?;
    let object = value.as_object().ok_or_else(|| bad("it is not a JSON object"))?;
    let id = match object.get("id") {
        None | Some(serde_json::Value::Null) => return Err(bad("it has no id")),
        Some(id) => id.as_str().ok_or_else(|| bad("its id is not a string"))?,
    };
    if id.is_empty() {
        return Err(bad("its id is empty"));
    }
    if id.len() > MAX_ID {
        return Err(bad("its id is too long"));
    }
    let status = match object.get("status") {
        None | Some(serde_json::Value::Null) => return Err(bad("it has no status")),
        Some(status) => status.as_str().ok_or_else(|| bad("its status is not a string"))?,
    };
    let status = PushStatus::from_word(status)
        .ok_or_else(|| bad("its status is not one of pending, approved, denied, expired"))?;
    Ok((id.to_owned(), status))
}

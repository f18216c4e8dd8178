//! The privacyIDEA backend's outside input: the server's answers, the reply
//! rules applied to them, and the State that carries a transaction back.

use serde_json::Value;

use super::input::Input;
use super::one_log_line;
use crate::backend::mapping::{RawRule, Rule, MAX_VALUE};
use crate::backend::privacyidea::answer::{parse_check, parse_poll, AnswerError, Verdict, MAX_TRANSACTION_ID};
use crate::challenge::{
    seal_transaction, unseal_transaction, Binding, StateError, StateKey, Transaction, TX_STATE_LEN,
};
use crate::text::printable;

/// Whatever a server answers: an accept only for `status: true` and `value: true`
/// exactly; a challenge only with one usable transaction id; every error fit for
/// one log line.
pub fn privacyidea_answer(data: &[u8]) {
    let json: Option<Value> = serde_json::from_slice(data).ok();
    match parse_check(data) {
        Ok(answer) => {
            let json = json.expect("an answer that parses is JSON");
            assert_eq!(json["result"]["status"], Value::Bool(true), "only status: true is an answer");
            match answer.verdict {
                Verdict::Accept => {
                    assert_eq!(json["result"]["value"], Value::Bool(true), "an accept needs value: true")
                }
                Verdict::Challenge(c) => {
                    assert!(!c.transaction_id.is_empty() && c.transaction_id.len() <= MAX_TRANSACTION_ID);
                    assert!(c.transaction_id.bytes().all(|b| b.is_ascii_graphic()));
                }
                Verdict::Reject | Verdict::Declined => {}
            }
        }
        Err(e) => {
            assert!(one_log_line(&e.to_string()), "an error is one log line: {e:?}");
            if json.is_none() {
                assert_eq!(e, AnswerError::NotJson);
            }
        }
    }
    match parse_poll(data) {
        Ok(_) => assert!(json_status_true(data), "a poll answer needs status: true"),
        Err(e) => assert!(one_log_line(&e.to_string())),
    }
    let text = String::from_utf8_lossy(data);
    let shown = printable(&text, 200);
    assert!(shown.len() <= 200 && one_log_line(&shown));
}

fn json_status_true(data: &[u8]) -> bool {
    serde_json::from_slice::<Value>(data).is_ok_and(|v| v["result"]["status"] == Value::Bool(true))
}

/// A reply rule from the input (from, match, value, prefix, suffix), applied to a
/// JSON detail (the rest): every value it gives is non-empty, at most 253 bytes,
/// carries the prefix and suffix, and appears once.
pub fn reply_rules(data: &[u8]) {
    let mut input = Input::new(data);
    let raw = RawRule {
        attribute: "Class".into(),
        from: Some(input.text()),
        pattern: input.option_text(),
        value: input.option_text(),
        prefix: input.option_text(),
        suffix: input.option_text(),
    };
    let Ok(rule) = Rule::from_raw(&raw) else { return };
    let Ok(detail) = serde_json::from_slice::<Value>(input.rest()) else { return };
    let values = rule.values(&detail);
    for (i, v) in values.iter().enumerate() {
        assert!(!v.is_empty() && v.len() <= MAX_VALUE, "{v:?}");
        assert!(v.starts_with(&rule.prefix) && v.ends_with(&rule.suffix));
        if let Some(fixed) = &rule.value {
            assert_eq!(v, &format!("{}{fixed}{}", rule.prefix, rule.suffix));
        }
        assert!(!values[..i].contains(v), "each value once");
    }
}

const NOW: u64 = 1_700_000_000;

/// A transaction State: arbitrary bytes never open without the key; one sealed
/// from the input opens to what was sealed, for its binding only, and refuses
/// every single-bit change.
pub fn transaction_state(data: &[u8]) {
    let key = StateKey::from_bytes([0x3C; 32]);
    let binding = Binding { instance: "mfa", user: "alice\0corp", nas: "192.0.2.1||vpn" };
    let expected =
        if data.len() != TX_STATE_LEN || data.first() != Some(&2) { StateError::Malformed } else { StateError::Forged };
    assert_eq!(unseal_transaction(&key, &binding, NOW, data).err(), Some(expected));

    let mut input = Input::new(data);
    let id: String = input.text().chars().filter(char::is_ascii_graphic).take(MAX_TRANSACTION_ID).collect();
    if id.is_empty() {
        return;
    }
    let tx = Transaction { id, poll: input.flag(), interactive: input.flag(), expires: NOW + u64::from(input.byte()) };
    let state = seal_transaction(&key, &binding, &tx);
    assert_eq!(state.len(), TX_STATE_LEN);
    assert_eq!(unseal_transaction(&key, &binding, NOW, &state).map(|(t, _)| t), Ok(tx.clone()));
    let other = Binding { user: "bob\0corp", ..binding };
    assert_eq!(unseal_transaction(&key, &other, NOW, &state).err(), Some(StateError::OtherUser));
    let flip = usize::from(input.byte()) % state.len();
    let mut tampered = state;
    tampered[flip] ^= 1 << (input.byte() % 8);
    assert!(unseal_transaction(&key, &binding, NOW, &tampered).is_err());
}

//! What the tests of the State share: a clock reading, keys, a binding and a dialogue.

use super::{Binding, Dialogue, Stage, StateKey};

pub const NOW: u64 = 1_700_000_000;

pub fn key(n: u8) -> StateKey {
    StateKey::from_bytes([n; 32])
}

pub fn binding() -> Binding<'static> {
    Binding { instance: "mfa", user: "alice", nas: "192.0.2.1|vpn-1|192.0.2.1" }
}

pub fn dialogue() -> Dialogue {
    Dialogue { stage: Stage::Code, method: 2, round: 1, expires: NOW + 120, sent_code: Some("0123456789".into()) }
}

//! The sealed State of a challenge: anything a NAS (or an attacker) sends back.

use super::input::Input;
use crate::challenge::{seal, unseal, Binding, Dialogue, Stage, StateError, StateKey, MAX_SENT_CODE, STATE_LEN};

const NOW: u64 = 1_700_000_000;

fn binding() -> Binding<'static> {
    Binding { instance: "mfa", user: "alice", nas: "192.0.2.1|vpn-1|192.0.2.1" }
}

/// The whole input is a State, opened with a fixed key: without the key nobody
/// makes one that opens, so every input is refused, and for the right reason.
pub fn state_unseal(data: &[u8]) {
    let key = StateKey::from_bytes([0x5A; 32]);
    let result = unseal(&key, &binding(), NOW, data);
    let expected = if data.len() != STATE_LEN || data[0] != 1 { StateError::Malformed } else { StateError::Forged };
    assert_eq!(result.err(), Some(expected));
}

/// A State sealed from the input (key, binding, dialogue) opens to what was
/// sealed, only for its binding and before its expiry; with any bit flipped,
/// cut short or made longer, it is refused.
pub fn state_tamper(data: &[u8]) {
    let mut input = Input::new(data);
    let mut key = [0u8; 32];
    let head = input.take(32);
    key[..head.len()].copy_from_slice(head);
    let key = StateKey::from_bytes(key);
    let (instance, user, nas) = (input.text(), input.text(), input.text());
    let binding = Binding { instance: &instance, user: &user, nas: &nas };
    let dialogue = dialogue(&mut input);
    let state = seal(&key, &binding, &dialogue);
    assert_eq!(state.len(), STATE_LEN, "every State has the same length");

    let now = dialogue.expires.min(NOW);
    let (opened, id) = unseal(&key, &binding, now, &state).expect("a fresh State opens");
    assert_eq!(opened, dialogue);
    assert_eq!(unseal(&key, &binding, now, &state).map(|(_, again)| again), Ok(id));
    if let Some(later) = dialogue.expires.checked_add(1) {
        assert_eq!(unseal(&key, &binding, later, &state).err(), Some(StateError::Expired));
    }
    let other = format!("{user}x");
    let elsewhere = [
        (Binding { instance: &other, ..binding }, StateError::OtherInstance, instance != other),
        (Binding { user: &other, ..binding }, StateError::OtherUser, true),
        (Binding { nas: &other, ..binding }, StateError::OtherNas, nas != other),
    ];
    for (wrong, why, differs) in elsewhere {
        if differs {
            assert_eq!(unseal(&key, &wrong, now, &state).err(), Some(why));
        }
    }

    // The rest of the input: (offset, mask) pairs of bit flips, then a length.
    let mut tampered = state.clone();
    let flips = input.rest();
    for pair in flips.chunks(2) {
        let at = usize::from(pair[0]) % STATE_LEN;
        tampered[at] ^= pair.get(1).copied().unwrap_or(1);
    }
    if tampered != state {
        let expected = if tampered[0] != state[0] { StateError::Malformed } else { StateError::Forged };
        assert_eq!(unseal(&key, &binding, now, &tampered).err(), Some(expected));
    }
    let cut = flips.first().map_or(0, |&b| usize::from(b) % STATE_LEN);
    assert_eq!(unseal(&key, &binding, now, &state[..cut]).err(), Some(StateError::Malformed));
    let mut longer = state;
    longer.push(flips.last().copied().unwrap_or(0));
    assert_eq!(unseal(&key, &binding, now, &longer).err(), Some(StateError::Malformed));
}

/// Any dialogue `seal` accepts (a sent code is at most 10 ASCII digits).
fn dialogue(input: &mut Input<'_>) -> Dialogue {
    let choice = input.byte();
    let code_len = usize::from(input.byte()) % (MAX_SENT_CODE + 2);
    let sent_code =
        (code_len <= MAX_SENT_CODE).then(|| input.take(code_len).iter().map(|b| char::from(b'0' + b % 10)).collect());
    Dialogue {
        stage: if choice & 1 == 0 { Stage::Menu } else { Stage::Code },
        method: input.byte(),
        round: input.byte(),
        expires: input.u64(),
        sent_code,
    }
}

//! The menu of the user's Duo devices (auto mode, the password alone): a push to
//! each device that takes one, a phone call, SMS passcodes, and a passcode, with
//! Duo's own device names (numbers masked as Duo gives them). The answer is the
//! number of a choice.
//!
//! The State seals a fingerprint of the choices (device ids and factors), not
//! the choices themselves (they do not fit): the answer round asks `/preauth`
//! again, rebuilds the menu and goes on only when it is the one shown. An answer
//! can only name a number; the device comes from Duo's list for this user, so a
//! forged one cannot pick a device the user does not have.

use sha2::{Digest, Sha256};

use crate::backend::duo::Answer;
use crate::config::Messages;
use crate::text::template::render;
use crate::text::{cut, join_lines, printable};

/// The start of the sealed id of a menu challenge (Duo's txids are UUIDs).
pub(super) const MENU_ID: &str = "menu-";
/// What all the menu's Reply-Messages hold together: one attribute's worth.
const MAX_PROMPT: usize = 253;
/// Answers are one digit.
const MAX_CHOICES: usize = 9;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Choice {
    /// `factor=push` to this device id.
    Push(String),
    /// `factor=phone` to this device id.
    Phone(String),
    /// `factor=sms` to this device id.
    Sms(String),
    /// A passcode, asked for next.
    Passcode,
}

pub(super) struct Menu {
    pub(super) choices: Vec<Choice>,
    /// Its lines: header, one per choice, footer.
    lines: Vec<String>,
}

impl Menu {
    /// The menu of `preauth`'s devices, or None when the user has none Duo can
    /// reach (a passcode is then all there is to ask for).
    pub(super) fn of(preauth: &Answer, messages: &Messages) -> Option<Menu> {
        let devices = preauth.get("devices").and_then(|d| d.as_array()).map(Vec::as_slice).unwrap_or_default();
        let mut offered: Vec<(Choice, String)> = vec![];
        // By factor, pushes first: what does not fit is dropped from the end.
        for (capability, label) in [("push", "Duo Push to"), ("phone", "Phone call to"), ("sms", "SMS passcodes to")] {
            for device in devices {
                let Some(id) = device_id(device) else { continue };
                let takes = device.get("capabilities").and_then(|c| c.as_array());
                if !takes.is_some_and(|c| c.iter().any(|c| c == capability)) {
                    continue;
                }
                let choice = match capability {
                    "push" => Choice::Push(id),
                    "phone" => Choice::Phone(id),
                    _ => Choice::Sms(id),
                };
                offered.push((choice, format!("{label} {}", display_name(device))));
            }
        }
        if offered.is_empty() {
            return None;
        }
        offered.truncate(MAX_CHOICES - 1);
        loop {
            let mut all = offered.clone();
            all.push((Choice::Passcode, "A passcode".to_string()));
            let shown = lines(&all, messages, &messages.menu_footer);
            // Shown again after a number not on the menu, with `bad_choice` last:
            // that one must fit in one attribute too.
            let fits =
                joined(&shown) <= MAX_PROMPT && joined(&lines(&all, messages, &messages.bad_choice)) <= MAX_PROMPT;
            if fits || offered.len() == 1 {
                return Some(Menu { choices: all.into_iter().map(|(c, _)| c).collect(), lines: shown });
            }
            offered.pop();
        }
    }

    /// The Reply-Message: every line in one attribute, so that a NAS that shows
    /// only the first shows the whole menu.
    pub(super) fn messages(&self) -> Vec<String> {
        join_lines(&self.lines, MAX_PROMPT)
    }

    /// What the State seals: "menu-" and a hash of the choices in their order.
    pub(super) fn id(&self) -> String {
        let mut hash = Sha256::new();
        for choice in &self.choices {
            let (kind, device) = match choice {
                Choice::Push(d) => ("push", d.as_str()),
                Choice::Phone(d) => ("phone", d.as_str()),
                Choice::Sms(d) => ("sms", d.as_str()),
                Choice::Passcode => ("passcode", ""),
            };
            hash.update(kind.as_bytes());
            hash.update([0]);
            hash.update(device.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{MENU_ID}{hex}")
    }

    /// The menu again after a number not on it, `messages.bad_choice` its last line.
    pub(super) fn with_bad_choice(mut self, messages: &Messages) -> Menu {
        let total = self.choices.len().to_string();
        if let Some(last) = self.lines.last_mut() {
            *last = line(&messages.bad_choice, "", "", &total);
        }
        self
    }
}

/// The length of `lines` joined by newlines.
fn joined(lines: &[String]) -> usize {
    lines.iter().map(|line| line.len() + 1).sum::<usize>().saturating_sub(1)
}

/// The menu's number in an answer: one or two digits (Duo's passcodes are longer).
pub(super) fn number(typed: &str) -> Option<usize> {
    (!typed.is_empty() && typed.len() <= 2 && typed.bytes().all(|b| b.is_ascii_digit()))
        .then(|| typed.parse().ok())
        .flatten()
}

fn lines(all: &[(Choice, String)], messages: &Messages, footer: &str) -> Vec<String> {
    let total = all.len().to_string();
    let mut out = vec![line(&messages.menu_header, "", "", &total)];
    for (i, (_, description)) in all.iter().enumerate() {
        out.push(line(&messages.menu_item, &(i + 1).to_string(), description, &total));
    }
    out.push(line(footer, "", "", &total));
    out
}

/// One line of the menu, `template` rendered, printable, within one attribute.
fn line(template: &str, index: &str, description: &str, total: &str) -> String {
    let text =
        render(template, &[("index", index), ("description", description), ("total", total), ("correlation", "")]);
    cut(&printable(&text, MAX_PROMPT), MAX_PROMPT).to_string()
}

/// The device's id, when it is one Duo could be sent back (printable ASCII).
fn device_id(device: &serde_json::Value) -> Option<String> {
    let id = device.get("device")?.as_str()?;
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())).then(|| id.to_string())
}

/// Duo's name for the device, its number already masked ("iOS (XXX-XXX-1234)").
fn display_name(device: &serde_json::Value) -> String {
    let name = ["display_name", "name", "number"]
        .iter()
        .find_map(|k| device.get(*k).and_then(|n| n.as_str()).filter(|n| !n.trim().is_empty()));
    printable(name.unwrap_or("your device"), 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preauth(json: &str) -> Answer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_menu_names_each_device_and_fits_one_attribute() {
        let messages = Messages::default();
        let two = preauth(
            r#"{"result":"auth","devices":[
            {"device":"DP1","capabilities":["auto","push","sms","phone"],"display_name":"iOS (XXX-XXX-1111)"},
            {"device":"DP2","capabilities":["push","phone"],"display_name":"Android (XXX-XXX-2222)"},
            {"device":"DT3","capabilities":[],"type":"token"}]}"#,
        );
        let menu = Menu::of(&two, &messages).unwrap();
        assert_eq!(
            menu.choices,
            vec![
                Choice::Push("DP1".into()),
                Choice::Push("DP2".into()),
                Choice::Phone("DP1".into()),
                Choice::Phone("DP2".into()),
                Choice::Passcode
            ],
            "the SMS left off: with \"Enter a number from 1 to 6:\" the menu would pass 253 bytes"
        );
        assert_eq!(menu.lines[2], "2. Duo Push to Android (XXX-XXX-2222)");
        assert_eq!(menu.lines.last().unwrap(), "Enter 1 to 5:");
        assert!(joined(&menu.lines) <= MAX_PROMPT);
        // The same devices, the same id; another device list, another one.
        assert_eq!(menu.id(), Menu::of(&two, &messages).unwrap().id());
        assert!(menu.id().len() <= crate::challenge::MAX_TRANSACTION_ID);
        let one = preauth(r#"{"devices":[{"device":"DP1","capabilities":["push"],"display_name":"iOS"}]}"#);
        assert_ne!(menu.id(), Menu::of(&one, &messages).unwrap().id());
        // Many devices: whole choices are dropped from the end, the passcode stays.
        let many: Vec<String> = (0..8)
            .map(|i| format!(r#"{{"device":"D{i}","capabilities":["push","phone","sms"],"display_name":"Phone number {i} (XXX-XXX-000{i})"}}"#))
            .collect();
        let menu = Menu::of(&preauth(&format!(r#"{{"devices":[{}]}}"#, many.join(","))), &messages).unwrap();
        assert!(joined(&menu.lines) <= MAX_PROMPT, "{:?}", menu.lines);
        assert_eq!(menu.messages().len(), 1);
        assert_eq!(menu.choices.last(), Some(&Choice::Passcode));
        assert!(menu.choices.len() <= MAX_CHOICES);
        // No device Duo can reach: no menu.
        assert!(Menu::of(&preauth(r#"{"devices":[{"device":"DT3","capabilities":[]}]}"#), &messages).is_none());
    }

    /// A menu that just fits with `Enter 1 to 6:` would not with `Enter a number
    /// from 1 to 6:`: it drops a choice, so that asked again it is still one attribute.
    #[test]
    fn the_menu_asked_again_still_fits_one_attribute() {
        let messages = Messages::default();
        // 249 bytes with "Enter 1 to 5:", 263 with "Enter a number from 1 to 5:".
        let name = |n: u8| format!("Phone {n} on call (XXX-XXX-{n}{n}{n}{n})");
        let device =
            |n: u8| format!(r#"{{"device":"D{n}","capabilities":["push","phone"],"display_name":"{}"}}"#, name(n));
        let answer = preauth(&format!(r#"{{"devices":[{},{}]}}"#, device(1), device(2)));
        let menu = Menu::of(&answer, &messages).unwrap();
        assert_eq!(menu.choices.len(), 4, "the last phone call left off: {:?}", menu.lines);
        let again = Menu::of(&answer, &messages).unwrap().with_bad_choice(&messages);
        assert!(again.lines.last().unwrap().starts_with("Enter a number from 1 to"), "{:?}", again.lines);
        assert!(joined(&again.lines) <= MAX_PROMPT, "{} bytes: {:?}", joined(&again.lines), again.lines);
        assert_eq!(again.messages().len(), 1);
        assert!(joined(&menu.lines) <= MAX_PROMPT);
    }

    #[test]
    fn an_answer_is_a_number_or_a_passcode() {
        assert_eq!(number("2"), Some(2));
        assert_eq!(number("12"), Some(12));
        assert_eq!(number("123456"), None);
        assert_eq!(number("push"), None);
        assert_eq!(number(""), None);
    }
}

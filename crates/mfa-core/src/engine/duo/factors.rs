//! The Duo factors that do not come typed with the login: a push or a phone
//! call (sent asynchronously, then `/auth_status` until `duo.wait`, or an
//! Access-Challenge at once with `approval = challenge`), new passcodes by SMS,
//! and the answer round of those challenges. Duo's txid travels sealed in
//! rlm_mfa's own State, bound to the instance, the user and the NAS, with the
//! dialogue's [`Round`]: `max_rounds` and `challenge_timeout` bound it as they
//! bound the local dialogues.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::menu::{number, Choice, Menu, MENU_ID};
use super::{reason, word, Call, DuoEngine, Slot, OUT_OF_BAND, SMS_WORD};
use crate::backend::duo::{Answer, CallError};
use crate::challenge::{seal_transaction, unseal_transaction, Binding, Transaction};
use crate::config::Approval;
use crate::engine::{Decision, Outcome, Trail};
use crate::stats::Cause;
use crate::text::template::render;
use crate::text::{cut, printable};

/// Where a Duo dialogue stands, sealed in its State with the id: the
/// challenges asked again so far (a number not on the menu, a push not approved
/// yet) and when the dialogue ends, `challenge_timeout` after its first
/// challenge: a challenge asked in an answer round keeps that expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Round {
    again: u8,
    expires: u64,
    /// The count a challenge asked now carries: one more than `again`, or 0 when a
    /// menu choice opens its method (as a local dialogue's method starts afresh).
    next: u8,
}

/// The id a State seals: the round's count (one digit: `max_rounds` is at most
/// 10) before the id of the challenge (Duo's txid, the menu's hash...).
fn sealed_id(again: u8, id: &str) -> String {
    format!("{again}:{id}")
}

/// The count and the id of [`sealed_id`]'s.
fn unsealed_id(sealed: &str) -> Option<(u8, &str)> {
    let (again, id) = sealed.split_once(':')?;
    Some((again.parse().ok().filter(|_| again.len() == 1)?, id))
}

/// The count a challenge asked now carries: 0 opening a dialogue or a method chosen
/// from the menu, else one more than the State answered (the caller checked `max_rounds`).
fn round_of(call: &Call) -> u8 {
    call.dialogue.map_or(0, |round| round.next)
}

/// Whether Duo's `txid` fits in a State with its round.
fn sealable(txid: &str) -> bool {
    Transaction::is_valid_id(sealed_id(9, txid).as_bytes())
}

impl DuoEngine {
    /// `/auth` with factor sms: Duo sends new passcodes (and says `deny`, status
    /// `sent`). With the State key, Access-Challenge for one of them; else a Reject
    /// whose Reply-Message says where they went, for the next login.
    /// `device`: Duo's id of the one chosen in the menu, or `auto`.
    pub(super) fn sms(&self, call: &Call, devices: &Answer, device: &str, trail: &mut Trail) -> Decision {
        let mut params = Self::about(call);
        params.extend([("factor", "sms"), ("device", device)]);
        match self.api.call("POST", "/auth/v2/auth", &params) {
            Ok(answer) if word(&answer, "status") == "sent" => {
                let prompt = render(
                    &self.cfg.messages.prompt_sent,
                    &[("destination", &sms_destination(devices, device)), ("correlation", ""), ("description", "")],
                )
                .replace(" ()", "");
                trail.info(format!("Duo sent SMS passcodes to \"{}\"", call.user));
                if self.key.is_some() {
                    return self.challenge(
                        call,
                        &format!("sms-{}", self.clock.now()),
                        false,
                        round_of(call),
                        &prompt,
                        trail,
                    );
                }
                Decision::reject(Cause::Denied, prompt)
            }
            Ok(answer) => {
                trail.info(format!("rejected: Duo sent no SMS passcodes to \"{}\": {}", call.user, reason(&answer)));
                Decision::reject(Cause::Unavailable, self.cfg.messages.send_failed.clone())
            }
            Err(e) => self.call_failed(call, e, trail),
        }
    }

    /// `/auth` with factor push, asynchronously; then `/auth_status` until
    /// `duo.wait`, or (`approval = challenge`) an Access-Challenge at once.
    /// `device`: Duo's id of the one chosen in the menu, or `auto`.
    pub(super) fn push(&self, call: &Call, factor: &str, device: &str, trail: &mut Trail) -> Decision {
        let challenges = self.duo.approval == Approval::Challenge;
        // Held while the login waits, unless it challenges.
        let _slot = match challenges {
            true => None,
            false => match self.waiting_slot(call, trail) {
                Ok(slot) => Some(slot),
                Err(busy) => return busy,
            },
        };
        let deadline = Instant::now() + self.duo.wait;
        let txid = match self.send_push(call, factor, device, trail) {
            Ok(txid) => txid,
            Err(decision) => return decision,
        };
        if let Some(shared) = call.shared.filter(|_| !challenges) {
            shared.txid(&txid, self.claim_ttl(), trail);
        }
        if challenges {
            return self.challenge(call, &txid, true, round_of(call), &self.cfg.messages.push_prompt_plain(), trail);
        }
        trail.debug(format!(
            "waiting up to {} s for \"{}\" to approve the Duo push",
            self.duo.wait.as_secs(),
            call.user
        ));
        self.wait_for(call, &txid, deadline, trail)
    }

    /// A slot among the `duo.max_waiting` logins that wait for a push at once,
    /// or the refusal when none is free.
    fn waiting_slot(&self, call: &Call, trail: &mut Trail) -> Result<Slot<'_>, Decision> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.duo.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            trail.warn(format!(
                "rejected: \"{}\": {} logins are already waiting for a push (duo.max_waiting)",
                call.user, self.duo.max_waiting
            ));
            return Err(Decision::reject(Cause::RateLimited, self.cfg.messages.push_busy.clone()));
        }
        Ok(Slot(&self.waiting))
    }

    /// A re-send of a push login another server of the farm sent: this server
    /// polls the same push, within its own `duo.wait` and `duo.max_waiting`, and
    /// so that its last poll ends by `until` (the re-send's own bound).
    pub(super) fn poll_joined(&self, call: &Call, txid: &str, until: Instant, trail: &mut Trail) -> Decision {
        let _slot = match self.waiting_slot(call, trail) {
            Ok(slot) => slot,
            Err(busy) => return busy,
        };
        trail.debug(format!("polling the Duo push another server sent to \"{}\"", call.user));
        let last_poll = until.checked_sub(self.duo.timeout).unwrap_or(until);
        self.wait_for(call, txid, (Instant::now() + self.duo.wait).min(last_poll), trail)
    }

    /// `/auth_status` every `duo.poll_interval` until the push is answered or `deadline`.
    fn wait_for(&self, call: &Call, txid: &str, deadline: Instant, trail: &mut Trail) -> Decision {
        loop {
            if let Some(decision) = self.status(call, txid, trail) {
                return decision;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(self.duo.poll_interval).max(Duration::from_millis(10)));
        }
        trail.info(format!("rejected: \"{}\" did not approve the Duo push in time", call.user));
        Decision::reject(Cause::PushTimeout, self.cfg.messages.push_timeout.clone())
    }

    /// The push's (or the call's) transaction id, or the decision when it cannot be sent.
    fn send_push(&self, call: &Call, factor: &str, device: &str, trail: &mut Trail) -> Result<String, Decision> {
        let pushinfo = format!("nas={}", encode_pushinfo(call.nas_name));
        let mut params = Self::about(call);
        params.extend([("factor", factor), ("device", device), ("async", "1")]);
        if factor == "push" && !call.nas_name.is_empty() {
            params.push(("pushinfo", &pushinfo));
        }
        match self.api.call("POST", "/auth/v2/auth", &params) {
            Ok(answer) => match answer.get("txid").and_then(|t| t.as_str()).filter(|t| sealable(t)) {
                Some(txid) => Ok(txid.to_string()),
                None => {
                    trail.error(format!("rejected \"{}\": Duo's answer to the push has no usable txid", call.user));
                    Err(Decision::reject(Cause::Unavailable, self.cfg.messages.internal.clone()))
                }
            },
            Err(e) => Err(self.push_call_failed(call, e, trail)),
        }
    }

    /// One `/auth_status`: the decision, or None while the push waits for the user.
    fn status(&self, call: &Call, txid: &str, trail: &mut Trail) -> Option<Decision> {
        let messages = &self.cfg.messages;
        match self.api.call("GET", "/auth/v2/auth_status", &[("txid", txid)]) {
            Ok(answer) => match word(&answer, "result") {
                "allow" => {
                    trail.debug(format!("\"{}\" approved the Duo push", call.user));
                    Some(Decision::accept_push())
                }
                "waiting" => None,
                _ => {
                    trail.info(format!("rejected: Duo denies the push to \"{}\": {}", call.user, reason(&answer)));
                    let timed_out = word(&answer, "status") == "timeout";
                    let message = if timed_out { &messages.push_timeout } else { &messages.push_denied };
                    let cause = if timed_out { Cause::PushTimeout } else { Cause::PushDenied };
                    Some(Decision::reject(cause, message.clone()))
                }
            },
            // Duo's auth_status long-polls: a call cut by `timeout` is not an answer yet.
            Err(CallError::TimedOut) => None,
            Err(e) => Some(self.push_call_failed(call, e, trail)),
        }
    }

    /// An Access-Challenge whose State seals the push's txid and `again` (the
    /// challenges asked again so far), bound to this instance, the user and the NAS.
    fn challenge(&self, call: &Call, txid: &str, poll: bool, again: u8, text: &str, trail: &mut Trail) -> Decision {
        self.challenge_lines(call, txid, poll, again, vec![cut(&printable(text, 253), 253).to_string()], trail)
    }

    /// As [`DuoEngine::challenge`], with several Reply-Messages (the menu's lines).
    /// The State expires with the dialogue: `challenge_timeout` after its first challenge.
    fn challenge_lines(
        &self,
        call: &Call,
        txid: &str,
        poll: bool,
        again: u8,
        lines: Vec<String>,
        trail: &mut Trail,
    ) -> Decision {
        let (Some(key), Some(limits)) = (&self.key, &self.cfg.challenge) else {
            trail.error("a Duo push challenge without a State key");
            return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
        };
        let expires = call.dialogue.map_or(self.clock.now() + limits.timeout, |round| round.expires);
        let tx = Transaction { id: sealed_id(again, txid), poll, interactive: true, expires };
        let binding = Binding { instance: &self.name, user: call.user, nas: call.nas };
        trail.debug(format!("challenging \"{}\"{}", call.user, if poll { " (push sent)" } else { "" }));
        Decision::challenge(seal_transaction(key, &binding, &tx), lines)
    }

    /// auto, the password alone: Access-Challenge with the menu of the user's
    /// devices (`preauth`'s), or for a passcode or a factor word when Duo can
    /// reach none of them.
    pub(super) fn ask(&self, call: &Call, preauth: &Answer, trail: &mut Trail) -> Decision {
        match Menu::of(preauth, &self.cfg.messages) {
            Some(menu) => {
                trail.debug(format!("offering \"{}\" a menu of {} Duo choices", call.user, menu.choices.len()));
                self.challenge_lines(call, &menu.id(), false, round_of(call), menu.messages(), trail)
            }
            None => self.ask_passcode(call, trail),
        }
    }

    /// Access-Challenge for a passcode (or a factor word).
    fn ask_passcode(&self, call: &Call, trail: &mut Trail) -> Decision {
        let id = format!("ask-{}", self.clock.now());
        self.challenge(call, &id, false, round_of(call), &self.cfg.messages.prompt_code, trail)
    }

    /// The answer to the menu: `/preauth` again, the same menu (its hash is the
    /// one sealed), and the choice numbered `number` of it.
    fn chosen(&self, call: &Call, sealed: &str, number: usize, trail: &mut Trail) -> Decision {
        let messages = &self.cfg.messages;
        let devices = match self.preauth(call, trail) {
            Ok(Ok(answer)) => answer,
            Ok(Err(decision)) => return decision,
            Err(e) => return self.call_failed(call, e, trail),
        };
        let menu = Menu::of(&devices, messages).filter(|menu| menu.id() == sealed);
        let Some(menu) = menu else {
            trail.info(format!("rejected: the Duo devices of \"{}\" changed since the menu was shown", call.user));
            return Decision::reject(Cause::BadState, messages.bad_state.clone());
        };
        let Some(choice) = number.checked_sub(1).and_then(|i| menu.choices.get(i)).cloned() else {
            let Some(again) = self.another_round(call) else {
                trail.info(format!("rejected: \"{}\" chose {number}, not on the menu, max_rounds times", call.user));
                return Decision::reject(Cause::BadState, messages.bad_state.clone());
            };
            trail.info(format!("\"{}\" chose {number}, not on the menu: asking again", call.user));
            let menu = menu.with_bad_choice(messages);
            return self.challenge_lines(call, sealed, false, again, menu.messages(), trail);
        };
        trail.debug(format!("\"{}\" chose {number} of the Duo menu", call.user));
        // The method chosen starts its own rounds; the dialogue's expiry stays.
        let call =
            &Call { ipaddr: call.ipaddr.clone(), dialogue: call.dialogue.map(|r| Round { next: 0, ..r }), ..*call };
        match choice {
            Choice::Push(device) => self.push(call, "push", &device, trail),
            Choice::Phone(device) => self.push(call, "phone", &device, trail),
            Choice::Sms(device) => self.sms(call, &devices, &device, trail),
            Choice::Passcode => self.ask_passcode(call, trail),
        }
    }

    /// The count of the challenge asked again in this answer round, or None when
    /// `max_rounds` ends the dialogue.
    fn another_round(&self, call: &Call) -> Option<u8> {
        let again = call.dialogue.map_or(0, |round| round.again).saturating_add(1);
        let max_rounds = self.cfg.challenge.as_ref().map_or(1, |limits| limits.max_rounds);
        (again < max_rounds).then_some(again)
    }

    /// The answer to a challenge: a number of the menu; a factor word; empty asks
    /// Duo whether the push was approved (not yet: the challenge again); anything
    /// else is a passcode typed instead.
    pub(super) fn answer(&self, call: &Call, state: &[u8], typed: &[u8], trail: &mut Trail) -> Decision {
        let messages = &self.cfg.messages;
        let user = call.user;
        let (Some(key), Some(used)) = (&self.key, &self.used) else {
            trail.info(format!("rejected: \"{user}\" sent a State, and this instance does not challenge"));
            return Decision::reject(Cause::BadState, messages.bad_state.clone());
        };
        let binding = Binding { instance: &self.name, user, nas: call.nas };
        let now = self.clock.now();
        let tx = match unseal_transaction(key, &binding, now, state) {
            Ok((tx, id)) => match used.use_state_once(user, &id, tx.expires, now) {
                Ok(true) => tx,
                Ok(false) => {
                    trail.info(format!("rejected: \"{user}\" sent a State that was already used"));
                    return Decision::reject(Cause::BadState, messages.bad_state.clone());
                }
                Err(e) => {
                    trail.error(format!("cannot record the answered State in the {}: {e}", used.describe()));
                    return Decision::refuse(Outcome::Fail, messages.internal.clone());
                }
            },
            Err(why) => {
                trail.info(format!("rejected: \"{user}\" sent a State this module cannot use: {why}"));
                return Decision::reject(Cause::BadState, messages.bad_state.clone());
            }
        };
        let Some((again, id)) = unsealed_id(&tx.id) else {
            trail.info(format!("rejected: \"{user}\" sent a State of another version of the module"));
            return Decision::reject(Cause::BadState, messages.bad_state.clone());
        };
        let round = Round { again, expires: tx.expires, next: again.saturating_add(1) };
        let call = &Call { ipaddr: call.ipaddr.clone(), dialogue: Some(round), ..*call };
        let typed = String::from_utf8_lossy(typed);
        if let (Some(sealed), Some(number)) = (id.strip_prefix(MENU_ID).filter(|_| !tx.poll), number(&typed)) {
            return self.chosen(call, &format!("{MENU_ID}{sealed}"), number, trail);
        }
        let challenges = self.duo.approval == Approval::Challenge;
        let out_of_band = OUT_OF_BAND.iter().any(|w| typed.eq_ignore_ascii_case(w));
        let asks_again = (out_of_band && challenges) || typed.eq_ignore_ascii_case(SMS_WORD);
        if asks_again && self.another_round(call).is_none() {
            // A word that starts a new push or SMS and its challenge: a round like any other.
            trail.info(format!("rejected: \"{user}\" reached max_rounds in the Duo dialogue"));
            return Decision::reject(Cause::BadState, messages.bad_state.clone());
        }
        if let Some(word) = OUT_OF_BAND.iter().find(|w| typed.eq_ignore_ascii_case(w)) {
            return self.push(call, word, "auto", trail);
        }
        if typed.eq_ignore_ascii_case(SMS_WORD) {
            return match self.api.call("POST", "/auth/v2/preauth", &Self::about(call)) {
                Ok(devices) => self.sms(call, &devices, "auto", trail),
                Err(e) => self.call_failed(call, e, trail),
            };
        }
        if !typed.is_empty() {
            return self.passcode(call, &typed, trail);
        }
        if !tx.poll {
            trail.info(format!("rejected: \"{user}\" answered the challenge without a passcode"));
            return Decision::reject(Cause::WrongCode, messages.wrong_code.clone());
        }
        match self.status(call, id, trail) {
            Some(decision) => decision,
            None => match self.another_round(call) {
                Some(again) => {
                    trail.debug(format!("the Duo push to \"{user}\" is not answered yet: asking again"));
                    self.challenge(call, id, true, again, &messages.push_pending, trail)
                }
                None => {
                    trail.info(format!("rejected: \"{user}\" did not approve the Duo push in max_rounds answers"));
                    Decision::reject(Cause::PushTimeout, messages.push_timeout.clone())
                }
            },
        }
    }
}

/// Where Duo sends SMS passcodes: the device chosen, else the first that takes
/// them, as Duo names it (its number already masked: `XXX-XXX-1234`).
fn sms_destination(preauth: &Answer, chosen: &str) -> String {
    let devices = preauth.get("devices").and_then(|d| d.as_array()).map(Vec::as_slice).unwrap_or_default();
    let takes_sms = |d: &&serde_json::Value| {
        let id = d.get("device").and_then(|i| i.as_str());
        d.get("capabilities").and_then(|c| c.as_array()).is_some_and(|c| c.iter().any(|c| c == "sms"))
            && (chosen == "auto" || id == Some(chosen))
    };
    let device = devices.iter().find(takes_sms);
    let name = device.and_then(|d| d.get("display_name").or(d.get("number"))).and_then(|n| n.as_str());
    printable(name.unwrap_or("your phone"), 60)
}

/// `pushinfo` is itself URL-encoded `key=value` pairs: the value escaped once more.
fn encode_pushinfo(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, crate::backend::duo::sign::ESCAPED).to_string()
}

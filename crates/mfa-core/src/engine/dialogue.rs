//! Challenge-response: after the first factor, an Access-Challenge asks for the
//! code (or first for a choice of method); the answer comes back with the State,
//! which carries the whole dialogue, sealed (see `challenge.rs`).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::codes::Given;
use super::limits::Request;
use super::{Decision, Dialogues, Engine, Origin, Outcome, Trail};
use crate::challenge::{self, Binding, Dialogue, Stage};
use crate::channel::push::PushStatus;
use crate::stats::{Cause, Tally};
use crate::store::state_store::Claim;
use crate::store::tokens::{Token, TokenKind, User};
use crate::text::mask::{mask_email, mask_phone};
use crate::text::template::render;
use crate::text::{cut, join_lines};

/// The most bytes of one Reply-Message.
const MAX_MESSAGE: usize = 253;

/// One way a user can answer, in the order the menu lists them.
enum Method<'a> {
    /// TOTP tokens: an authenticator app.
    App(Vec<&'a Token>),
    /// HOTP tokens: a hardware token.
    Hardware(Vec<&'a Token>),
    Sms(&'a str),
    Email(&'a str),
    /// Approval on the user's device; the user may type an app code instead.
    Push(Vec<&'a Token>),
}

fn methods<'a>(entry: &'a User, dialogues: &Dialogues, push: bool) -> Vec<Method<'a>> {
    let of_kind = |totp: bool| -> Vec<&'a Token> {
        entry.tokens.iter().filter(|t| matches!(t.kind, TokenKind::Totp { .. }) == totp).collect()
    };
    let mut list = Vec::new();
    let app = of_kind(true);
    if !app.is_empty() {
        list.push(Method::App(app));
    }
    let hardware = of_kind(false);
    if !hardware.is_empty() {
        list.push(Method::Hardware(hardware));
    }
    if let (Some(number), Some(_)) = (&entry.sms, &dialogues.sms) {
        list.push(Method::Sms(number));
    }
    if let (Some(address), Some(_)) = (&entry.email, &dialogues.email) {
        list.push(Method::Email(address));
    }
    if push {
        list.push(Method::Push(entry.tokens.iter().collect()));
    }
    list
}

/// Whether the user has a second factor other than the push: a token, or an SMS
/// number or e-mail address where this instance can send a code.
pub(super) fn has_a_method_besides_push(entry: &User, dialogues: Option<&Dialogues>) -> bool {
    !entry.tokens.is_empty() || dialogues.is_some_and(|d| !methods(entry, d, false).is_empty())
}

fn description(method: &Method<'_>, push_menu: &str) -> String {
    let named = |tokens: &[&Token], default: &str| match tokens {
        [only] => only.description.clone().unwrap_or_else(|| default.to_string()),
        _ => default.to_string(),
    };
    match method {
        Method::App(tokens) => named(tokens, "Authenticator app"),
        Method::Hardware(tokens) => named(tokens, "Hardware token"),
        Method::Sms(number) => format!("SMS to {}", mask_phone(number)),
        Method::Email(address) => format!("E-mail to {}", mask_email(address)),
        Method::Push(_) => push_menu.to_string(),
    }
}

/// A short code shown with the prompt and in the SMS or e-mail, so that the user
/// can tell which login a message belongs to. The same in every round of one
/// dialogue (its user, NAS, method, expiry and sent code do not change when an
/// answer is wrong); two logins started in the same second differ by their sent
/// code; keyed, so that it tells nothing of that code.
fn correlation(key: &[u8; 32], binding: &Binding<'_>, dialogue: &Dialogue) -> String {
    let mut hash = Sha256::new();
    hash.update(key);
    for part in [binding.instance, binding.user, binding.nas] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(dialogue.expires.to_be_bytes());
    hash.update([dialogue.method, matches!(dialogue.stage, Stage::Menu) as u8]);
    hash.update(dialogue.sent_code.as_deref().unwrap_or("").as_bytes());
    let digest = hash.finalize();
    format!("{:02X}{:02X}", digest[0], digest[1])
}

/// A random code of `length` digits from the OS's random source.
fn random_code(length: usize) -> Result<String, getrandom::Error> {
    let mut code = String::with_capacity(length);
    while code.len() < length {
        let mut byte = [0u8; 1];
        getrandom::getrandom(&mut byte)?;
        // 250 is the largest multiple of 10 below 256: no digit is favoured.
        if byte[0] < 250 {
            code.push(char::from(b'0' + byte[0] % 10));
        }
    }
    Ok(code)
}

impl Engine {
    fn dialogues(&self) -> &Dialogues {
        // Present in every mode that reaches this file (Config::challenge is set for them).
        self.dialogues.as_ref().expect("challenge modes load the State key")
    }

    fn describe(&self, method: &Method<'_>) -> String {
        description(method, &self.cfg.messages.push_menu)
    }

    fn methods<'a>(&self, entry: &'a User, dialogues: &Dialogues) -> Vec<Method<'a>> {
        methods(entry, dialogues, self.pusher.is_some())
    }

    fn binding<'a>(&'a self, user: &'a str, nas: &'a str) -> Binding<'a> {
        Binding { instance: &self.name, user, nas }
    }

    /// The first challenge: the menu, or the single method's prompt.
    pub(super) fn start_dialogue(&self, user: &str, entry: &User, origin: &Origin<'_>, trail: &mut Trail) -> Decision {
        let methods = self.methods(entry, self.dialogues());
        match methods.len() {
            0 => {
                trail.info(format!(
                    "rejected: \"{user}\" has no second factor this module can use (an SMS or e-mail \
                     destination needs its gateway configured)"
                ));
                Decision::reject(Cause::NoToken, self.cfg.messages.no_token.clone())
            }
            1 => self.open_method(user, &methods, 0, origin, trail),
            _ => {
                let dialogue = Dialogue {
                    stage: Stage::Menu,
                    method: 0,
                    round: 0,
                    expires: self.clock.now() + self.challenge_cfg().timeout,
                    sent_code: None,
                };
                trail.info(format!("challenge: \"{user}\" chooses among {} methods", methods.len()));
                self.menu(user, origin, &methods, dialogue, None)
            }
        }
    }

    fn challenge_cfg(&self) -> &crate::config::Challenge {
        self.cfg.challenge.as_ref().expect("challenge modes have challenge settings")
    }

    fn menu(
        &self,
        user: &str,
        origin: &Origin<'_>,
        methods: &[Method<'_>],
        dialogue: Dialogue,
        first: Option<String>,
    ) -> Decision {
        let m = &self.cfg.messages;
        let total = methods.len().to_string();
        let (state, corr) = self.seal(user, origin.nas, &dialogue);
        let mut lines: Vec<String> = first.into_iter().collect();
        lines.push(render(&m.menu_header, &[("total", &total), ("correlation", &corr)]));
        for (i, method) in methods.iter().enumerate() {
            let index = (i + 1).to_string();
            let description = self.describe(method);
            lines.push(render(
                &m.menu_item,
                &[("index", &index), ("description", &description), ("total", &total), ("correlation", &corr)],
            ));
        }
        lines.push(render(&m.menu_footer, &[("total", &total), ("correlation", &corr)]));
        Decision::challenge(state, join_lines(&lines, MAX_MESSAGE))
    }

    /// The prompt for method `index`; for SMS and e-mail, the code is made and sent first.
    fn open_method(
        &self,
        user: &str,
        methods: &[Method<'_>],
        index: usize,
        origin: &Origin<'_>,
        trail: &mut Trail,
    ) -> Decision {
        let now = self.clock.now();
        let settings = self.challenge_cfg();
        let (destination, sender, message) = match &methods[index] {
            Method::App(_) | Method::Hardware(_) => {
                let dialogue = Dialogue {
                    stage: Stage::Code,
                    method: index as u8,
                    round: 0,
                    expires: now + settings.timeout,
                    sent_code: None,
                };
                trail.info(format!(
                    "challenge: \"{user}\" is asked for the code of: {}",
                    self.describe(&methods[index])
                ));
                return self.code_prompt(user, origin, &methods[index], dialogue, None);
            }
            Method::Push(_) => return self.open_push(user, &methods[index], index, origin, trail),
            Method::Sms(number) => (*number, &self.dialogues().sms, self.cfg.channels.sms_message()),
            Method::Email(address) => (*address, &self.dialogues().email, self.cfg.channels.email_message()),
        };
        let (Some(sender), Some(message)) = (sender, message) else {
            trail.error(format!("refused \"{user}\": {} has no sender configured", self.describe(&methods[index])));
            return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
        };
        let code = match random_code(settings.code_length) {
            Ok(c) => c,
            Err(e) => {
                trail.error(format!("no random code: {e}"));
                return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
            }
        };
        let dialogue = Dialogue {
            stage: Stage::Code,
            method: index as u8,
            round: 0,
            expires: now + settings.code_lifetime,
            sent_code: Some(code.clone()),
        };
        let (state, corr) = self.seal(user, origin.nas, &dialogue);
        let values = [("code", code.as_str()), ("correlation", corr.as_str()), ("user", user)];
        let text = render(message, &values);
        if let Some(refusal) = self.refuse_to_reach(Request::SentCode, user, trail) {
            return refusal;
        }
        if let Err(e) = sender.send_rendered(user, destination, &text, &values) {
            trail.error(format!("rejected: the code for \"{user}\" could not be sent: {e}"));
            return Decision::reject(Cause::Unavailable, self.cfg.messages.send_failed.clone());
        }
        trail.info(format!("challenge: a code was sent to \"{user}\" by {}", self.describe(&methods[index])));
        self.prompt_for(&methods[index], state, &corr, None, "")
    }

    fn code_prompt(
        &self,
        user: &str,
        origin: &Origin<'_>,
        method: &Method<'_>,
        dialogue: Dialogue,
        first: Option<String>,
    ) -> Decision {
        let (state, corr) = self.seal(user, origin.nas, &dialogue);
        let number = match method {
            Method::Push(_) => dialogue.sent_code.as_deref().map(super::push::push_number),
            _ => None,
        };
        self.prompt_for(method, state, &corr, first, number.unwrap_or(""))
    }

    /// `dialogue` sealed into a State for `user` at `nas`, and its correlation code.
    fn seal(&self, user: &str, nas: &str, dialogue: &Dialogue) -> (Vec<u8>, String) {
        let binding = self.binding(user, nas);
        let dialogues = self.dialogues();
        (
            challenge::seal(&dialogues.key, &binding, dialogue),
            correlation(&dialogues.correlation_key, &binding, dialogue),
        )
    }

    /// `number`: a push's number to match (empty for the other methods).
    fn prompt_for(
        &self,
        method: &Method<'_>,
        state: Vec<u8>,
        corr: &str,
        first: Option<String>,
        number: &str,
    ) -> Decision {
        let m = &self.cfg.messages;
        let description = self.describe(method);
        let prompt = match method {
            Method::App(_) | Method::Hardware(_) => {
                render(&m.prompt_code, &[("description", &description), ("correlation", corr)])
            }
            Method::Push(_) => {
                render(&m.push_prompt, &[("description", &description), ("correlation", corr), ("number", number)])
            }
            Method::Sms(d) | Method::Email(d) => {
                let masked = if matches!(method, Method::Sms(_)) { mask_phone(d) } else { mask_email(d) };
                render(
                    &m.prompt_sent,
                    &[("destination", &masked), ("description", &description), ("correlation", corr)],
                )
            }
        };
        let lines: Vec<String> =
            first.into_iter().chain(std::iter::once(prompt)).map(|line| cut(&line, MAX_MESSAGE).to_owned()).collect();
        Decision::challenge(state, lines)
    }

    /// The answer to one of our challenges.
    pub(super) fn answer(
        &self,
        user: &str,
        entry: &User,
        state: &[u8],
        answer: &str,
        origin: &Origin<'_>,
        trail: &mut Trail,
    ) -> Decision {
        let m = &self.cfg.messages;
        let Some(dialogues) = self.dialogues.as_ref() else {
            trail.info(format!("rejected: \"{user}\" sent a State, but this instance never challenges"));
            return Decision::reject(Cause::BadState, m.bad_state.clone());
        };
        let now = self.clock.now();
        let (dialogue, id) = match challenge::unseal(&dialogues.key, &self.binding(user, origin.nas), now, state) {
            Ok(opened) => opened,
            Err(why) => {
                trail.info(format!("rejected: \"{user}\" answered with a bad State: {why}"));
                return Decision::reject(Cause::BadState, m.bad_state.clone());
            }
        };
        match self.store().use_state_once(user, &id, dialogue.expires, now) {
            Ok(true) => {}
            Ok(false) => {
                trail.info(format!("rejected: \"{user}\" answered with a State that was already used"));
                return Decision::reject(Cause::BadState, m.bad_state.clone());
            }
            Err(e) => {
                // Without the record the State could be answered again: fail closed.
                trail.error(format!("cannot record the answered State in the {}: {e}", self.store().describe()));
                return Decision::refuse(Outcome::Fail, m.internal.clone());
            }
        }
        let methods = self.methods(entry, dialogues);
        match dialogue.stage {
            Stage::Menu => self.choose(user, origin, &methods, dialogue, answer, trail),
            Stage::Code => {
                let Some(method) = methods.get(usize::from(dialogue.method)) else {
                    trail.info(format!("rejected: \"{user}\" no longer has the method chosen"));
                    return Decision::reject(Cause::BadState, m.bad_state.clone());
                };
                self.check_answer(user, origin, method, dialogue, answer, trail)
            }
        }
    }

    fn choose(
        &self,
        user: &str,
        origin: &Origin<'_>,
        methods: &[Method<'_>],
        dialogue: Dialogue,
        answer: &str,
        trail: &mut Trail,
    ) -> Decision {
        match answer.trim().parse::<usize>() {
            Ok(n) if (1..=methods.len()).contains(&n) => self.open_method(user, methods, n - 1, origin, trail),
            _ => {
                let round = dialogue.round.saturating_add(1);
                if round >= self.challenge_cfg().max_rounds {
                    trail.info(format!("rejected: \"{user}\" made {round} invalid choices"));
                    return Decision::reject(Cause::BadState, self.cfg.messages.bad_state.clone());
                }
                trail.info(format!("challenge: \"{user}\" made an invalid choice, asked again"));
                let total = methods.len().to_string();
                let first = render(&self.cfg.messages.bad_choice, &[("total", &total)]);
                self.menu(user, origin, methods, Dialogue { round, ..dialogue }, Some(first))
            }
        }
    }

    fn check_answer(
        &self,
        user: &str,
        origin: &Origin<'_>,
        method: &Method<'_>,
        dialogue: Dialogue,
        answer: &str,
        trail: &mut Trail,
    ) -> Decision {
        let decision = match (method, &dialogue.sent_code) {
            (Method::App(tokens) | Method::Hardware(tokens), _) => {
                self.check_code(user, tokens, &Given::Code(answer.into()), trail)
            }
            (Method::Push(tokens), Some(nonce)) => {
                return self.check_push_answer(user, origin, method, tokens, dialogue.clone(), nonce, answer, trail)
            }
            (Method::Sms(_) | Method::Email(_), Some(sent)) => self.check_sent_code(user, sent, answer, trail),
            (Method::Sms(_) | Method::Email(_) | Method::Push(_), None) => {
                trail.info(format!("rejected: \"{user}\" answered a State that carries no code"));
                return Decision::reject(Cause::BadState, self.cfg.messages.bad_state.clone());
            }
        };
        if decision.outcome != Outcome::Reject {
            return decision;
        }
        // A wrong answer: ask again, until max_rounds wrong answers end the dialogue.
        let round = dialogue.round.saturating_add(1);
        if round >= self.challenge_cfg().max_rounds {
            trail.info(format!("rejected: \"{user}\" gave {round} wrong answers in one dialogue"));
            return decision;
        }
        self.code_prompt(
            user,
            origin,
            method,
            Dialogue { round, ..dialogue },
            Some(self.cfg.messages.wrong_answer.clone()),
        )
    }

    /// A code the module sent by SMS or e-mail: good once (the State is single use),
    /// and a wrong one counts toward the lockout like a wrong OTP.
    fn check_sent_code(&self, user: &str, sent: &str, answer: &str, trail: &mut Trail) -> Decision {
        let _gate = self.gates.enter(user);
        let now = self.clock.now();
        if let Some(decision) = self.refuse_if_locked(user, trail) {
            return decision;
        }
        if bool::from(answer.trim().as_bytes().ct_eq(sent.as_bytes())) {
            // The lock checked again as the store clears the failures: one counted
            // on another server since the read above refuses the code.
            let decision = self.take(user, Claim::Nothing, now, trail);
            // Never None: nothing is claimed, so nothing was used before.
            let decision =
                decision.unwrap_or_else(|| Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()));
            if decision.outcome == Outcome::Ok {
                trail.debug(format!("accepted: \"{user}\" with a code sent by the module"));
            }
            return decision;
        }
        match self.record_failure(user, now, Some(&format!("\"{user}\" sent a wrong code")), trail) {
            Ok(Some(seconds)) => Decision::locks(self.locked_message(seconds)),
            Ok(None) => Decision::reject(Cause::WrongCode, self.cfg.messages.wrong_code.clone()),
            // As when the store is unavailable: the reply tells nothing of the code.
            Err(()) => Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()),
        }
    }
}

impl Engine {
    /// Sends a push and answers with a challenge at once: no thread waits. The State
    /// carries a random nonce (in the place of a sent code) from which the push's
    /// request id is derived, and a last digit naming the provider that made the push,
    /// so the answer round, on this server or its pair, finds the same push there.
    fn open_push(
        &self,
        user: &str,
        method: &Method<'_>,
        index: usize,
        origin: &Origin<'_>,
        trail: &mut Trail,
    ) -> Decision {
        let nonce = match random_code(crate::challenge::MAX_SENT_CODE - 1) {
            Ok(n) => n,
            Err(e) => {
                trail.error(format!("no random nonce: {e}"));
                return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
            }
        };
        if let Some(refusal) = self.refuse_to_reach(Request::Push, user, trail) {
            return refusal;
        }
        let provider = match self.create_push(user, origin, &nonce, None) {
            Ok((id, _)) => crate::channel::push::provider_of(&id).min(9),
            Err(e) => return self.push_not_sent(user, &e, trail),
        };
        // A push sent counts as a failure at once: whoever holds only the password
        // never answers the challenge, and an answer that never comes counts nothing.
        // The approval (or a right code in its place) resets the count as any success
        // does; a denial or time-out answered later adds nothing more. The challenge
        // goes out even when this count locks the user: the push is on the device.
        let locks = match self.record_failure(user, self.clock.now(), None, trail) {
            Ok(locked) => locked.is_some(),
            Err(()) => return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()),
        };
        let dialogue = Dialogue {
            stage: Stage::Code,
            method: index as u8,
            round: 0,
            expires: self.clock.now() + self.challenge_cfg().timeout,
            sent_code: Some(format!("{nonce}{provider}")),
        };
        trail.info(format!("challenge: a push was sent to \"{user}\", who is asked to approve, then press OK"));
        let mut decision = self.code_prompt(user, origin, method, dialogue, None);
        if locks {
            decision.tally = Tally::ChallengeLocks;
        }
        decision
    }

    /// The challenge-then-check path of mode push (and of its busy fallback).
    pub(super) fn push_challenge(&self, user: &str, entry: &User, origin: &Origin<'_>, trail: &mut Trail) -> Decision {
        let methods = self.methods(entry, self.dialogues());
        let Some(index) = methods.iter().position(|m| matches!(m, Method::Push(_))) else {
            trail.error(format!("refused \"{user}\": no push provider is configured"));
            return Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone());
        };
        self.open_push(user, &methods[index], index, origin, trail)
    }

    /// The answer to "approve, then press OK": a code from an app is checked as a
    /// code; anything else asks the provider how the push ended.
    #[allow(clippy::too_many_arguments)]
    fn check_push_answer(
        &self,
        user: &str,
        origin: &Origin<'_>,
        method: &Method<'_>,
        tokens: &[&Token],
        dialogue: Dialogue,
        nonce: &str,
        answer: &str,
        trail: &mut Trail,
    ) -> Decision {
        let typed = answer.trim();
        if tokens.iter().any(|t| crate::factor::otp::is_well_formed(typed, t.digits)) {
            let decision = self.check_code(user, tokens, &Given::Code(typed.into()), trail);
            if decision.outcome != Outcome::Reject {
                return decision;
            }
            return self.ask_again(
                user,
                origin,
                method,
                dialogue,
                decision,
                self.cfg.messages.wrong_answer.clone(),
                trail,
            );
        }
        match self.push_status(user, origin, nonce) {
            Ok(PushStatus::Approved) => self.push_approved(user, trail),
            // Counted toward the lockout when the push was sent (open_push).
            Ok(PushStatus::Denied) => {
                trail.info(format!("rejected: \"{user}\" denied the push"));
                Decision::reject(Cause::PushDenied, self.cfg.messages.push_denied.clone())
            }
            Ok(PushStatus::Expired) => {
                trail.info(format!("rejected: \"{user}\" did not answer the push in time"));
                Decision::reject(Cause::PushTimeout, self.cfg.messages.push_timeout.clone())
            }
            Ok(PushStatus::Pending) => {
                let timeout = Decision::reject(Cause::PushTimeout, self.cfg.messages.push_timeout.clone());
                trail.info(format!("\"{user}\" pressed OK before approving the push"));
                self.ask_again(user, origin, method, dialogue, timeout, self.cfg.messages.push_pending.clone(), trail)
            }
            // The push was sent: a provider failing now lets no one in, whatever failmode says.
            Err(e) => self.push_refused(user, &format!("reading the push's status: {e}"), trail),
        }
    }

    /// Another round with `first` in front of the prompt, or `last` when the rounds are used up.
    #[allow(clippy::too_many_arguments)]
    fn ask_again(
        &self,
        user: &str,
        origin: &Origin<'_>,
        method: &Method<'_>,
        dialogue: Dialogue,
        last: Decision,
        first: String,
        trail: &mut Trail,
    ) -> Decision {
        let round = dialogue.round.saturating_add(1);
        if round >= self.challenge_cfg().max_rounds {
            trail.info(format!("rejected: \"{user}\": {round} rounds without success in one dialogue"));
            return last;
        }
        self.code_prompt(user, origin, method, Dialogue { round, ..dialogue }, Some(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_codes_are_digits_of_the_length_asked() {
        for length in 4..=10 {
            let code = random_code(length).unwrap();
            assert_eq!(code.len(), length);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(random_code(10).unwrap(), random_code(10).unwrap());
    }

    #[test]
    fn messages_fit_one_attribute() {
        assert_eq!(cut(&"é".repeat(200), MAX_MESSAGE).len(), 252);
        assert_eq!(cut("short", MAX_MESSAGE), "short");
    }

    #[test]
    fn correlation_is_four_hex_characters_the_same_in_every_round() {
        let binding = Binding { instance: "mfa", user: "alice", nas: "vpn" };
        let first = Dialogue { stage: Stage::Code, method: 1, round: 0, expires: 1_700_000_300, sent_code: None };
        let c = correlation(&[7; 32], &binding, &first);
        assert_eq!(c.len(), 4);
        assert!(c.chars().all(|ch| ch.is_ascii_hexdigit()));
        assert_eq!(correlation(&[7; 32], &binding, &Dialogue { round: 2, ..first.clone() }), c);
        let later = Dialogue { expires: first.expires + 1, ..first.clone() };
        let others = [correlation(&[8; 32], &binding, &first), correlation(&[7; 32], &binding, &later)];
        assert!(others.iter().any(|o| *o != c), "the key and the login change it");
    }
}

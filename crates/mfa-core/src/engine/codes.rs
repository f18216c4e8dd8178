//! Checking a one-time code (or a CHAP answer) against a user's tokens, with
//! replay protection and lockout.

use std::borrow::{Borrow, Cow};

use super::{Chap, Decision, Engine, MsChap2, Outcome, Trail};
use crate::factor::otp;
use crate::factor::state::TokenState;
use crate::factor::verify;
use crate::stats::Cause;
use crate::store::state_store::{Claim, FailureCount, Take};
use crate::store::tokens::{Token, TokenKind};

/// What the user gave: a code borrowed from the request where it can be.
pub(super) enum Given<'a> {
    Code(Cow<'a, str>),
    Chap(Chap),
    MsChap2(MsChap2),
}

impl Given<'_> {
    /// For the log: what the NAS sent.
    fn what(&self) -> &'static str {
        match self {
            Given::Code(_) => "code",
            Given::Chap(_) => "CHAP answer",
            Given::MsChap2(_) => "MS-CHAPv2 answer",
        }
    }
}

impl Engine {
    /// Accepts `given` if it answers one of `tokens` and was not used before, recording
    /// the use; otherwise counts a failure toward the lockout.
    /// Tokens as the caller holds them (the user's own, or some of them by reference).
    pub(super) fn check_code<T: Borrow<Token>>(
        &self,
        user: &str,
        tokens: &[T],
        given: &Given<'_>,
        trail: &mut Trail,
    ) -> Decision {
        let each_token = || tokens.iter().map(Borrow::borrow);
        let messages = &self.cfg.messages;
        // Held to the end: the outcome is recorded before the user's next guess is checked.
        let _gate = self.gates.enter(user);
        let now = self.clock.now();
        // A store over the network checks the lock in the claim itself: a TOTP code
        // costs one round trip. Otherwise (or with an HOTP token, whose counter
        // bounds the search) catch up first, so the replay state read below is current.
        let one_trip = self.store().checks_lock_in_claims()
            && matches!(given, Given::Code(_))
            && each_token().all(|t| matches!(t.kind, TokenKind::Totp { .. }));
        if !one_trip {
            if let Some(decision) = self.refuse_if_locked(user, trail) {
                return decision;
            }
        }

        let well_formed = match given {
            Given::Code(code) => each_token().any(|t| otp::is_well_formed(code, t.digits)),
            Given::Chap(_) | Given::MsChap2(_) => true,
        };
        // MS-CHAPv2's challenge hash is the same for every candidate code.
        let challenge_hash = match given {
            Given::MsChap2(m) => m.challenge_hash(),
            _ => [0; 8],
        };
        let mut used_before = false;
        if well_formed {
            for token in each_token() {
                // One trip: any step of the window the code matches; the claim refuses a used one.
                let token_state =
                    if one_trip { TokenState::default() } else { self.store().token(user, &token.serial) };
                let found = match given {
                    Given::Code(code) => verify::find(token, &token_state, code, now, self.windows()),
                    Given::Chap(chap) => verify::find_chap(
                        token,
                        &token_state,
                        chap.ident,
                        &chap.challenge,
                        &chap.response,
                        now,
                        self.windows(),
                    ),
                    Given::MsChap2(m) => verify::find_answer(token, &token_state, now, self.windows(), |code| {
                        m.answers(&challenge_hash, code)
                    }),
                };
                if let Some(found) = found {
                    let mut decision = match self.take(user, claim_of(token, found), now, trail) {
                        Some(decision) => decision,
                        None if one_trip => {
                            used_before = true; // a replay: counted below
                            break;
                        }
                        None => {
                            trail.info(format!("rejected: \"{user}\" sent a code used meanwhile by another process"));
                            return Decision::reject(Cause::Replayed, messages.wrong_code.clone());
                        }
                    };
                    if decision.outcome == Outcome::Ok {
                        // Debug, not info: FreeRADIUS logs the accept itself ("Login OK" with
                        // auth = yes), and a log line per accept is the costliest part of an accept.
                        trail.debug_with(|| format!("accepted: \"{user}\" with token {}", token.serial));
                        if let Given::MsChap2(m) = given {
                            decision.attributes = mschap2_reply(&m.success(&verify::code_at(token, found)));
                        }
                    }
                    return decision;
                }
            }
        }
        let mut cause = Cause::Malformed;
        let why = if well_formed {
            let replayed = used_before
                || match given {
                    Given::Code(code) => each_token().any(|t| verify::is_replay(t, code, now, self.windows())),
                    Given::Chap(_) | Given::MsChap2(_) => false,
                };
            cause = if replayed { Cause::Replayed } else { Cause::WrongCode };
            format!("\"{user}\" sent a {} {}", if replayed { "used (replayed)" } else { "wrong" }, given.what(),)
        } else {
            let refs: Vec<&Token> = each_token().collect();
            format!("\"{user}\" sent a code that is not {}", self.digit_words(&refs))
        };

        // One trip: the claim checked the lock only for a code that matched; the
        // store checks it as it counts this failure, in the same step, so that a
        // locked user's other codes are refused as locked, not counted.
        let locked = match self.count_failure(user, now, Some(&why), one_trip, trail) {
            Ok(FailureCount::Counted(lock)) => (lock.locked_until > now).then(|| lock.locked_until - now),
            Ok(FailureCount::Locked(lock)) => {
                return self.refuse_locked(user, lock.locked_until.saturating_sub(now), trail);
            }
            // Answered as when the store is unavailable, so the reply tells nothing of the code.
            Err(()) => return Decision::refuse(Outcome::Fail, messages.internal.clone()),
        };
        let message = match locked {
            Some(seconds) => self.locked_message(seconds),
            None if well_formed => messages.wrong_code.clone(),
            // Mode otp: the lengths would tell that the account exists (an unknown user's
            // "abc" is a wrong code), and how long its codes are.
            None => self.before_password(self.bad_format_message(&each_token().collect::<Vec<_>>())),
        };
        if locked.is_some() {
            Decision::locks(message)
        } else {
            Decision::reject(cause, message)
        }
    }

    /// Takes what an accepted login claims, with the lock check, as one step of
    /// the store (so that another process sharing it, a second instance after a
    /// HUP, mfa-admin or another server, cannot take it too, and a lock counted
    /// there first refuses it): the decision, or None when the claim was used before.
    pub(super) fn take(&self, user: &str, claim: Claim<'_>, now: u64, trail: &mut Trail) -> Option<Decision> {
        // A code the module sent claims nothing of a token: its login is what is recorded.
        let what = if matches!(claim, Claim::Nothing) { "login" } else { "code" };
        match self.store().take_unless_locked(user, claim, now) {
            Ok(Take::Taken) => {
                self.note_upkeep_error(trail);
                Some(Decision::accept())
            }
            Ok(Take::Used) => None,
            Ok(Take::Locked(lock)) => Some(self.refuse_locked(user, lock.locked_until.saturating_sub(now), trail)),
            Err(e) => {
                // Accepting without a durable record would let the code be used again.
                trail.error(format!("cannot record the accepted {what} in the {}: {e}", self.store().describe()));
                Some(Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()))
            }
        }
    }

    /// Refuses a locked user, after catching up with the store: another module
    /// instance or server sharing it may have locked the user, or mfa-admin
    /// unlocked them.
    pub(super) fn refuse_if_locked(&self, user: &str, trail: &mut Trail) -> Option<Decision> {
        let lock = match self.store().current_lock(user) {
            Ok(lock) => lock,
            Err(e) => {
                trail.error(format!("cannot read the {}: {e}", self.store().describe()));
                return Some(Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()));
            }
        };
        let seconds = self.locked_for(&lock)?;
        Some(self.refuse_locked(user, seconds, trail))
    }

    /// The refusal of a user locked for `seconds` more, and its log line.
    fn refuse_locked(&self, user: &str, seconds: u64, trail: &mut Trail) -> Decision {
        trail.info(format!("rejected: \"{user}\" is locked for {seconds} more seconds"));
        Decision::refuse(Outcome::Userlock, self.locked_message(seconds))
    }

    /// Clears the user's failures (after an approved push); a store that fails
    /// refuses the login, as any operation on it that fails does.
    pub(super) fn reset_failures(&self, user: &str, trail: &mut Trail) -> Option<Decision> {
        let e = self.store().reset_failures(user).err()?;
        trail.error(format!(
            "refused \"{user}\": cannot reset the failure count in the {}: {e}",
            self.store().describe()
        ));
        Some(Decision::refuse(Outcome::Fail, self.cfg.messages.internal.clone()))
    }

    /// Counts a failure; returns the seconds of lockout when this failure locks the user.
    /// The store counts it whole, so that module instances (or servers) sharing
    /// it add up their failures. Err when it cannot be counted: the caller fails
    /// closed, since a failure not counted is a guess the lockout never sees.
    /// `why`, the refusal's cause, is logged as "rejected: ..."; when the failure
    /// cannot be recorded, in the one error line that says so.
    pub(super) fn record_failure(
        &self,
        user: &str,
        now: u64,
        why: Option<&str>,
        trail: &mut Trail,
    ) -> Result<Option<u64>, ()> {
        match self.count_failure(user, now, why, false, trail)? {
            FailureCount::Counted(lock) => Ok((lock.locked_until > now).then(|| lock.locked_until - now)),
            // Not asked for: the failure was counted.
            FailureCount::Locked(_) => Ok(None),
        }
    }

    /// [`Engine::record_failure`]'s work; with `unless_locked`, nothing is counted
    /// for a user locked at `now` (the caller refuses as locked), the check and
    /// the count one step of the store.
    fn count_failure(
        &self,
        user: &str,
        now: u64,
        why: Option<&str>,
        unless_locked: bool,
        trail: &mut Trail,
    ) -> Result<FailureCount, ()> {
        let lockout = &self.cfg.lockout;
        let (max, duration) = (lockout.max_failures, lockout.duration);
        let updated = if unless_locked {
            self.store().record_failure_unless_locked(user, now, max, duration)
        } else {
            self.store().record_failure(user, now, max, duration).map(FailureCount::Counted)
        };
        if let (Ok(FailureCount::Counted(_)), Some(why)) = (&updated, why) {
            trail.info(format!("rejected: {why}"));
        }
        self.note_upkeep_error(trail);
        match updated {
            Ok(FailureCount::Counted(lock)) if lock.locked_until > now => {
                trail.warn(format!(
                    "\"{user}\" locked for {} seconds after {} consecutive failures",
                    lock.locked_until - now,
                    lock.failures
                ));
                Ok(FailureCount::Counted(lock))
            }
            Ok(counted) => Ok(counted),
            Err(e) => {
                let store = self.store().describe();
                trail.error(match why {
                    Some(why) => format!("rejected: {why}, and the failure cannot be recorded in the {store}: {e}"),
                    None => format!("cannot record the failure in the {store}: {e}"),
                });
                Err(())
            }
        }
    }

    /// "6 digits", "6 or 8 digits": the code lengths of these tokens.
    fn digit_words(&self, tokens: &[&Token]) -> String {
        let mut digits: Vec<u32> = tokens.iter().map(|t| t.digits).collect();
        if digits.is_empty() {
            digits.push(otp::MIN_DIGITS);
        }
        digits.sort_unstable();
        digits.dedup();
        let words: Vec<String> = digits.iter().map(u32::to_string).collect();
        format!("{} digits", words.join(" or "))
    }

    pub(super) fn bad_format_message(&self, tokens: &[&Token]) -> String {
        let words = self.digit_words(tokens);
        self.cfg.messages.bad_format.replace("{digits}", words.trim_end_matches(" digits"))
    }
}

impl Engine {
    /// Upkeep that failed after a write (the write itself stood), or damage the
    /// store found and repaired (a journal truncated in place), is worth a log line.
    fn note_upkeep_error(&self, trail: &mut Trail) {
        if let Some(e) = self.store().take_upkeep_error() {
            trail.error(format!("state store upkeep: {e}"));
        }
    }
}

/// MS-CHAP-Error for a refused MS-CHAPv2 login, as FreeRADIUS's mschap module
/// words it (RFC 2759 section 6): the response's ident, then E=691
/// (authentication failure, for a wrong, used or locked-out code alike, so it
/// tells nothing more than the Reject), R=0 (a new code is a new login), a
/// fresh challenge and version 3. The ident goes as an octal escape, which
/// FreeRADIUS turns back into the byte.
pub(super) fn mschap2_error(ident: u8, challenge: &[u8; 16]) -> (String, String) {
    let challenge = data_encoding::HEXLOWER.encode(challenge);
    ("MS-CHAP-Error".into(), format!("\\{ident:03o}E=691 R=0 C={challenge} V=3 M=Authentication rejected"))
}

/// What accepting `found` (a TOTP step, or an HOTP counter) claims of `token`.
fn claim_of(token: &Token, found: u64) -> Claim<'_> {
    match token.kind {
        TokenKind::Totp { .. } => Claim::TotpStep { serial: &token.serial, step: found },
        TokenKind::Hotp => Claim::HotpCounter { serial: &token.serial, next: found.saturating_add(1) },
    }
}

/// The reply of an accepted MS-CHAPv2 login, as FreeRADIUS's mschap module gives it
/// (use_mppe = yes, require_encryption = no, require_strong = no): the NAS needs
/// MS-CHAP2-Success to finish the login and the keys to bring up MPPE.
fn mschap2_reply(success: &crate::factor::mschap::Success) -> Vec<(String, String)> {
    let hex = |bytes: &[u8]| format!("0x{}", data_encoding::HEXLOWER.encode(bytes));
    vec![
        ("MS-CHAP2-Success".into(), hex(&success.mschap2_success)),
        ("MS-MPPE-Recv-Key".into(), hex(&success.recv_key)),
        ("MS-MPPE-Send-Key".into(), hex(&success.send_key)),
        ("MS-MPPE-Encryption-Policy".into(), "Encryption-Allowed".into()),
        ("MS-MPPE-Encryption-Types".into(), "RC4-40or128-bit-Allowed".into()),
    ]
}

//! 802.1X with EAP-GTC: the typed text reaches the module only at authenticate.
//!
//! Inside PEAP (or TTLS) with EAP-GTC, authorize runs while the request holds an
//! EAP-Message and no User-Password: the eap module's gtc copies the typed text into
//! User-Password only when it calls `Auth-Type <gtc's auth_type>`. In `password+otp`
//! mode that section is `mfa  pap  mfa` (sites-available/mfa-inner-tunnel): the first
//! call splits "password,code" here, the first factor checks the password part, the
//! second call checks the code. A split answers `Updated`, which alone never makes
//! an Auth-Type section succeed: a section that forgets the first factor or the
//! second call fails closed.

use std::fmt;

use super::{AuthenticateInput, AuthenticateOutput, Engine, LogLine, Outcome, Trail};
use crate::config::Mode;
use crate::factor::password;

/// "password,code" split at authenticate: the password part for the first factor
/// (it replaces User-Password), the code for the module's next call.
#[derive(Clone, PartialEq, Eq)]
pub struct LateSplit {
    pub password: String,
    pub code: String,
}

// Hand-written so that `{:?}` can never leak either secret.
impl fmt::Debug for LateSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LateSplit { password: <redacted>, code: <redacted> }")
    }
}

impl Engine {
    /// The first call of `password+otp`'s EAP-GTC section: splits User-Password when
    /// authorize could not. None when this call is not that one (then authenticate
    /// checks the code as usual).
    pub(super) fn split_late(&self, input: &AuthenticateInput) -> Option<AuthenticateOutput> {
        if !input.deferred_split || input.stashed_code.is_some() || self.cfg.mode != Mode::PasswordOtp {
            return None;
        }
        let mut trail = Trail::default();
        let field = input.password.map(std::str::from_utf8);
        let refused = |trail: Trail, why: String| {
            let mut log = trail.log;
            log.push(LogLine { level: super::Level::Info, text: format!("rejected: {why}") });
            AuthenticateOutput {
                outcome: Some(Outcome::Reject),
                tally: crate::stats::Tally::Reject { cause: crate::stats::Cause::Malformed, locks: false },
                reply_messages: vec![self.cfg.messages.no_code.clone()],
                log,
                ..AuthenticateOutput::default()
            }
        };
        let field = match field {
            Some(Ok(f)) => f,
            Some(Err(_)) => return Some(refused(trail, "the typed text (EAP-GTC) is not valid UTF-8".into())),
            None => {
                return Some(refused(
                    trail,
                    "no typed text at authenticate: is this section called by eap's gtc { auth_type }?".into(),
                ))
            }
        };
        match password::split(field, &self.cfg.split) {
            Ok(parts) => {
                trail.debug(
                    "EAP-GTC: split the typed text into password and code; the first factor checks the password next",
                );
                Some(AuthenticateOutput {
                    outcome: Some(Outcome::Updated),
                    split: Some(LateSplit { password: parts.password.to_string(), code: parts.otp.to_string() }),
                    log: trail.log,
                    ..AuthenticateOutput::default()
                })
            }
            Err(why) => Some(refused(trail, format!("the typed text (EAP-GTC): {why}"))),
        }
    }
}

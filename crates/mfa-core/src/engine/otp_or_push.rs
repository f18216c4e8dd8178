//! Mode otp-or-push (TrustBuilder/inWebo's RADIUS flow): the password field holds
//! either a code, checked alone as the second factor, or anything else, which is
//! the password: the first factor, then a push. A code alone is decided in
//! authorize, where the first factor has not run yet, so that the site's
//! `Auth-Type mfa { pap mfa }` serves both: an accepted code sets Auth-Type to
//! Accept (the post-auth check sees the module verified it), a refused one ends
//! the request there.

use std::borrow::Cow;

use super::codes::Given;
use super::{AuthorizeInput, AuthorizeOutput, Engine, Outcome, Trail};
use crate::config::Mode;
use crate::store::tokens::TokenDb;

impl Engine {
    /// The field of a first request in mode otp-or-push when it is a code
    /// (`auto_code_pattern`, whole); None otherwise.
    pub(super) fn code_alone<'a>(&self, input: &AuthorizeInput<'a>) -> Option<&'a str> {
        if self.cfg.mode != Mode::OtpOrPush || input.has_state {
            return None;
        }
        let field = std::str::from_utf8(input.password?).ok()?;
        self.auto_code.is_match(field).then_some(field)
    }

    /// Checks a code typed alone, with the replay state and lockout of any code.
    pub(super) fn verify_code_alone(
        &self,
        db: &TokenDb,
        user: &str,
        code: &str,
        mut out: AuthorizeOutput,
        trail: &mut Trail,
    ) -> AuthorizeOutput {
        trail.debug("User-Password is a code: checked alone, without the first factor");
        let decision = match db.user(user).filter(|e| !e.tokens.is_empty()) {
            Some(entry) => self.check_code(user, &entry.tokens, &Given::Code(Cow::Borrowed(code)), trail),
            None => {
                trail.info(format!("rejected: \"{user}\" typed a code but has no token enrolled"));
                // As in mode otp: no password was checked, so unless detailed_messages
                // it reads as a wrong code, and nothing tells that the account exists.
                super::Decision::reject(super::Cause::NoToken, self.before_password(self.cfg.messages.no_token.clone()))
            }
        };
        if decision.outcome == Outcome::Ok {
            out.accept = true;
        }
        out.outcome = Some(decision.outcome);
        out.tally = decision.tally;
        out.reply_message = decision.messages.into_iter().next();
        out
    }
}

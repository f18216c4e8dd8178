//! The start of authorize for the backends that decide over the network
//! (privacyIDEA, Duo): they step aside for another module's Auth-Type and for an
//! EAP round without a password, refuse a User-Name they cannot use, and set the
//! stripped name and the realm, as the local engine does.

use super::{auth_type_already, parse_user_name, AuthorizeInput, AuthorizeOutput, Outcome, Trail};
use crate::config::Config;

/// True when the backend goes on with the request; false when `out` is decided.
pub(super) fn user_of_request(
    cfg: &Config,
    name: &str,
    input: &AuthorizeInput<'_>,
    out: &mut AuthorizeOutput,
    trail: &mut Trail,
) -> bool {
    if let Some(other) = input.auth_type.filter(|t| *t != name) {
        trail.info(auth_type_already(other, name));
        out.outcome = Some(Outcome::Noop);
        return false;
    }
    if input.eap && input.password.is_none() {
        trail.debug("EAP request without User-Password: left to eap");
        out.outcome = Some(Outcome::Noop);
        return false;
    }
    if input.eap {
        *out = super::refuse_eap_with_password(cfg, input.user_name, trail);
        return false;
    }
    match parse_user_name(input.user_name, &cfg.realm) {
        Err(why) if input.user_name.is_none() => {
            trail.debug(why);
            out.outcome = Some(Outcome::Noop);
            false
        }
        Err(why) => {
            trail.info(format!("rejected: {why}"));
            out.reply_message = Some(cfg.messages.bad_user.clone());
            out.outcome = Some(Outcome::Invalid);
            false
        }
        Ok(parsed) => {
            if cfg.realm.strip && parsed.realm.is_some() {
                out.stripped_user_name = Some(parsed.user.to_owned());
            }
            out.realm = parsed.realm.map(str::to_owned);
            true
        }
    }
}

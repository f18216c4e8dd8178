//! The `messages { }` section: what a user is told on each kind of reject, and
//! the prompts of a challenge. `{seconds}`, `{digits}`, `{index}`,
//! `{description}`, `{total}`, `{destination}` and `{correlation}` are replaced
//! where they apply.

use super::declare::Item;

/// A Reply-Message holds 253 bytes; a message may hold at most 200, which leaves
/// room for what its placeholders put in.
pub const MESSAGE_MAX: usize = 200;

impl Item {
    /// Flag of every message: at most [`MESSAGE_MAX`] bytes.
    pub const fn reply_message(self) -> Item {
        self.max_len(MESSAGE_MAX, "a Reply-Message holds 253; room is left for what placeholders add")
    }
}

crate::section! {
    /// The texts, each at its default unless the configuration sets it.
    pub struct Messages {
        wrong_code: String = "Wrong or already used code" [reply_message()],
        locked: String = "Too many failed attempts: try again in {seconds} seconds" [reply_message()],
        no_token: String = "No second factor is enrolled for this user" [reply_message()],
        bad_format: String = "The code must be {digits} digits" [reply_message()],
        no_code: String = "Enter your password, then a comma, then the code from your authenticator" [reply_message()],
        bad_user: String = "Malformed user name" [reply_message()],
        internal: String = "Authentication is unavailable, try again later" [reply_message()],
        prompt_code: String = "Enter OTP:" [reply_message()],
        prompt_sent: String = "Enter the code sent to {destination} ({correlation}):" [reply_message()],
        menu_header: String = "Choose how to confirm this login:" [reply_message()],
        menu_item: String = "{index}. {description}" [reply_message()],
        menu_footer: String = "Enter 1 to {total}:" [reply_message()],
        bad_choice: String = "Enter a number from 1 to {total}:" [reply_message()],
        wrong_answer: String = "Wrong code, try again:" [reply_message()],
        bad_state: String = "This login has expired or is not valid, please start again" [reply_message()],
        send_failed: String = "The code could not be sent, try again later" [reply_message()],
        push_denied: String = "The login was denied on your device" [reply_message()],
        push_timeout: String = "No answer from your device in time" [reply_message()],
        push_unavailable: String = "Approval by push is unavailable, try again later" [reply_message()],
        /// Past `limits.pushes` or `limits.codes_sent`.
        too_many_requests: String = "Too many approval requests: try again in {seconds} seconds" [reply_message()],
        push_busy: String = "Too many logins are waiting for approval, try again shortly" [reply_message()],
        push_prompt: String = "Approve the login numbered {number} on your device, then press OK ({correlation})" [reply_message()],
        push_pending: String = "Not approved yet: approve on your device, then press OK" [reply_message()],
        push_menu: String = "Approve on your device (push)" [reply_message()],
        /// privacyIDEA said no (its own reason goes to the log only).
        rejected: String = "Wrong user name, PIN or code" [reply_message()],
    }
}

impl Messages {
    /// `push_prompt` for a push the module neither numbers nor correlates (Duo's,
    /// privacyIDEA's): without " numbered {number}", " ({correlation})" or either
    /// placeholder left elsewhere.
    pub fn push_prompt_plain(&self) -> String {
        let prompt = self.push_prompt.replace(" numbered {number}", "").replace(" ({correlation})", "");
        prompt.replace("{number}", "").replace("{correlation}", "")
    }
}

//! One user of the token file: tokens, where codes can be sent, groups.

use crate::factor::token::Token;

#[derive(Debug, Clone, Default)]
pub struct User {
    /// In file order: the first token is the default for `mfa-admin code`.
    pub tokens: Vec<Token>,
    /// A phone number for codes sent by SMS.
    pub sms: Option<String>,
    /// An e-mail address for codes sent by e-mail.
    pub email: Option<String>,
    /// Groups, for reply attributes (`reply Class { from = "user.groups" }`).
    pub groups: Vec<String>,
}

impl User {
    pub fn token(&self, serial: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.serial == serial)
    }

    /// Whether the user has any second factor at all.
    pub fn has_factor(&self) -> bool {
        !self.tokens.is_empty() || self.sms.is_some() || self.email.is_some()
    }
}

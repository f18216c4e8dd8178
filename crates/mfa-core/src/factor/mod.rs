//! The second factor: one-time codes (RFC 4226/6238), the tokens and secrets they
//! come from, the rule that checks one against a token (and CHAP, MS-CHAPv2), and the
//! password field split into password and code.

pub mod mschap;
pub mod otp;
pub mod password;
pub mod secret;
pub mod state;
pub mod token;
pub mod verify;

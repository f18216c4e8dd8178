//! Backends other than the local token file (privacyIDEA, Duo), and the reply rules
//! that both backends share.

pub mod duo;
pub mod mapping;
pub mod privacyidea;

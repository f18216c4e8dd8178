//! Backends other than the local token file (privacyIDEA), and the reply rules
//! that both backends share.

pub mod mapping;
pub mod privacyidea;

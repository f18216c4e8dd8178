//! The core of rlm_mfa: everything the FreeRADIUS module decides, in plain Rust
//! that never sees a pointer and is unit-tested without FreeRADIUS. The module
//! crate (`rlm_mfa`, `src/ffi/`) adapts FreeRADIUS's ABI to [`engine`].
//!
//! Layers, lowest first (a module uses only those before it; tests/layers.rs checks):
//! - `clock`, `text`, `guard`, `fast_map`, `sealing`: time, text that fits, panics
//!   contained, the hash maps of the login path, the one way bytes are sealed;
//! - `identity`, `factor`, `stats`: who the user is; codes and how they are checked;
//!   the counters administrators watch;
//! - `config`: every configuration item, declared once, and the checked settings;
//! - `store`: the token file, the state journal, files reloaded when they change;
//! - `challenge`: the sealed State of a dialogue;
//! - `channel`: HTTP, the SMS/e-mail gateways, push providers;
//! - `backend`: privacyIDEA, and the reply rules both backends share;
//! - `engine`: authorize and authenticate, built from all of the above.
#![forbid(unsafe_code)]

pub mod backend;
pub mod challenge;
pub mod channel;
pub mod clock;
pub mod config;
pub mod engine;
pub mod factor;
pub mod fast_map;
pub mod fuzzing;
pub mod guard;
pub mod identity;
pub mod sealing;
pub mod stats;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod text;

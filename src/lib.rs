//! rlm_mfa: multi-factor authentication for FreeRADIUS 3.2.
//!
//! Everything outside `ffi` is plain Rust that never sees a pointer and is
//! unit-tested without FreeRADIUS. The `ffi` module (feature `freeradius`) is the
//! only place with `unsafe`: it adapts FreeRADIUS's module ABI to [`engine`].
#![cfg_attr(not(feature = "freeradius"), forbid(unsafe_code))]

pub mod challenge;
pub mod clock;
pub mod config;
pub mod engine;
pub mod fuzzing;
pub mod gateway;
pub mod guard;
pub mod http;
pub mod journal;
pub mod mapping;
pub mod mask;
pub mod otp;
pub mod password;
pub mod privacyidea;
pub mod push;
pub mod realm;
pub mod reload;
pub mod template;
pub mod text;
pub mod tokens;
#[cfg(test)]
mod testutil;
pub mod usermap;
pub mod verify;

#[cfg(feature = "freeradius")]
mod ffi;

//! The Duo backend: Duo's Auth API v2 (`/check`, `/preauth`, `/auth`,
//! `/auth_status`) decides the second factor, a push to the Duo app or a Duo
//! passcode typed where a code goes. Every request is signed as Duo specifies
//! (`sign`), sent over https verified against the system's trust store
//! (`config::duo::endpoint`), with the secret key from the configuration or a private file
//! (`secret`); `client` makes the calls and reads Duo's answers.

pub mod client;
pub mod secret;
pub mod sign;

pub use client::{Answer, CallError, DuoApi, HttpDuo};
// The checked `duo { }` section is the configuration layer's.
pub use crate::config::duo::{DuoConfig, Enroll, SecretKey};

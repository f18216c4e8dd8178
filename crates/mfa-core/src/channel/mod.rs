//! The ways out of the server: HTTP, the SMS/e-mail gateways, SMTP, push providers.
//!
//! `http` builds the one kind of client they all use (ureq, bounded calls,
//! TLS verified against `tls`'s roots); `failover` is how several servers of
//! one service are asked; `setup` is why a client's settings are refused.

pub mod failover;
pub mod gateway;
pub mod http;
pub mod push;
pub mod resolver;
pub mod setup;
pub mod smtp;
pub mod tls;

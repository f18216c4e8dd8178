//! The ways out of the server: HTTP, the SMS/e-mail gateways, push providers.

pub mod gateway;
pub mod http;
pub mod push;

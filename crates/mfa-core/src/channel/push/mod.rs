//! Push approval: the module asks a push provider (an HTTPS API) to send
//! "Approve login to vpn-gw-1 for alice?" to the user's phone, then asks it for
//! the push's status until the user approves or denies, the push expires or the
//! module stops waiting (the waiting itself is the engine's; this module makes
//! the calls).
//!
//! # The generic provider's JSON contract
//!
//! `{base}` is the configured base URL without a trailing `/`; it may have a
//! path (`https://push.example.com/api/v1`) but no query or fragment.
//!
//! - `POST {base}/push` with the body
//!   `{"user": "...", "message": "...", "client": "...", "request_id": "..."}`
//!   answers 200 or 201 with `{"id": "...", "status": "pending"}`.
//!   `request_id` is an idempotency key: a second POST with the same
//!   `request_id` answers the push that already exists (its id, its status as
//!   it is now) instead of sending another. This is how the two RADIUS servers
//!   of a pair, or a retransmitted request, join one push.
//! - `GET {base}/push/{id}` answers 200 with
//!   `{"id": "...", "status": "pending" | "approved" | "denied" | "expired"}`.
//!   The id in the path is percent-encoded (all but `A-Z a-z 0-9 - . _ ~`).
//! - `DELETE {base}/push/{id}` answers 200 or 204: the push is cancelled
//!   (best effort; the module does not rely on it).
//!
//! Every request has `User-Agent: rlm_mfa/<version>`, `Accept:
//! application/json` and, when configured, the `Authorization` header as
//! configured (e.g. `Bearer ...`); the POST has `Content-Type:
//! application/json`. Redirects are not followed.
//!
//! Anything else is an error: another HTTP status, an answer that is not a
//! JSON object with a string `id` and a string `status`, a status word other
//! than the four above (they are compared exactly, lower case), an `id` that is
//! empty or longer than 512 bytes, or a GET whose answer names another id.
//! Other fields of the answers are ignored.
//!
//! Neither the Authorization value nor the base URL's user information or
//! query ever appears in an error, a log line or `Debug`; nor does anything the
//! provider answered, which could echo the credential.
//!
//! [`Failover`] puts several providers (a primary, a secondary) behind one
//! [`PushProvider`].
//!
//! The files: `provider` (the contract's types and the trait), `answer` (what
//! the provider's JSON must say), `http` (the client of the contract), `id` (the
//! ids a [`Failover`] gives), `failover` (several providers behind one).

mod answer;
mod failover;
mod http;
mod id;
mod provider;

pub use answer::parse_answer;
pub use failover::Failover;
pub use http::{encode_segment, read_answer, HttpPushProvider, ProviderConfig};
pub use id::provider_of;
pub use provider::{is_failure, PushError, PushProvider, PushRequest, PushStatus};

#[cfg(test)]
mod failover_tests;
// The fake provider of the integration tests, so that both test the same
// server. Here rather than inside a test module: there #[path] would be
// resolved from a directory named after that module, which does not exist.
#[cfg(test)]
#[path = "../../../../../tests/common/fake_push.rs"]
mod fake_push;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod test_support;

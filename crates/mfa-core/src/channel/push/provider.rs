//! The provider contract's types: where a push stands, what to send, why a
//! call failed, and what any provider (HTTP, a failover, a test's fake) does.

use std::fmt;

/// Where a push stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushStatus {
    /// Sent; the user has not answered yet.
    Pending,
    Approved,
    Denied,
    /// The provider gave up on it (or it was cancelled).
    Expired,
}

impl PushStatus {
    /// The word of the contract: "pending", "approved", "denied", "expired".
    pub fn as_str(self) -> &'static str {
        match self {
            PushStatus::Pending => "pending",
            PushStatus::Approved => "approved",
            PushStatus::Denied => "denied",
            PushStatus::Expired => "expired",
        }
    }

    pub(super) fn from_word(word: &str) -> Option<PushStatus> {
        match word {
            "pending" => Some(PushStatus::Pending),
            "approved" => Some(PushStatus::Approved),
            "denied" => Some(PushStatus::Denied),
            "expired" => Some(PushStatus::Expired),
            _ => None,
        }
    }
}

impl fmt::Display for PushStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call to the provider failed. None of them holds the Authorization
/// value, the URL or what the provider answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushError {
    /// No complete answer within the configured timeout.
    Timeout,
    /// No connection, or the connection failed before a complete answer; the
    /// reason in plain words.
    Unreachable(String),
    /// The provider answered with an HTTP status the contract does not allow.
    Status(u16),
    /// The answer is not what the contract says; what is wrong, in plain words.
    BadAnswer(String),
    /// Every provider of a [`Failover`] was tried for this call and failed.
    AllDown,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Timeout => f.write_str("the push provider did not answer in time"),
            PushError::Unreachable(reason) => {
                write!(f, "cannot reach the push provider: {reason}")
            }
            PushError::Status(code) => write!(f, "the push provider answered HTTP {code}"),
            PushError::BadAnswer(reason) => {
                write!(f, "the push provider's answer is not valid: {reason}")
            }
            PushError::AllDown => f.write_str("every push provider failed"),
        }
    }
}

impl std::error::Error for PushError {}

/// What to send. `request_id` is the idempotency key: the same login asked
/// for twice (by the other server of a pair, or again after a retransmission)
/// gets the same one, and so joins the same push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushRequest<'a> {
    pub user: &'a str,
    /// What the phone shows: "Approve login to vpn-gw-1 for alice?"
    pub message: &'a str,
    /// The RADIUS client (NAS) the login comes through.
    pub client: &'a str,
    pub request_id: &'a str,
    /// Number matching: the number the login's prompt shows, for the device to
    /// ask for (or show), so that the user approves only the login in front of them.
    pub number: Option<&'a str>,
}

/// Something that can send a push and tell how it stands.
pub trait PushProvider: Send + Sync {
    /// Sends the push (or joins the one with the same `request_id`); gives its id
    /// and its status, which for a joined push may already be final.
    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError>;
    /// Like [`PushProvider::open`], the id alone.
    fn create(&self, req: &PushRequest<'_>) -> Result<String, PushError> {
        self.open(req).map(|(id, _)| id)
    }
    /// Like [`PushProvider::open`], asking only provider number `index` of a
    /// [`Failover`]: to find a push again where it was made. One provider has no
    /// other to ask.
    fn open_on(&self, index: usize, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        let _ = index;
        self.open(req)
    }
    /// How the push with that id stands.
    fn status(&self, id: &str) -> Result<PushStatus, PushError>;
    /// Withdraws the push (best effort).
    fn cancel(&self, id: &str) -> Result<(), PushError>;
}

/// Whether the provider failed (unreachable, slow, 5xx, garbage), as opposed to
/// answering a refusal (a 4xx): only failures count for failover and failmode.
pub fn is_failure(e: &PushError) -> bool {
    match e {
        PushError::Timeout | PushError::Unreachable(_) | PushError::BadAnswer(_) | PushError::AllDown => true,
        PushError::Status(code) => (500..600).contains(code),
    }
}

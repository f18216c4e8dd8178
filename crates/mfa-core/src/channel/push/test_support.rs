//! What the push tests share: a provider's settings with a credential, a
//! request, the checks that errors show no secret.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::{HttpPushProvider, ProviderConfig, PushError, PushProvider, PushRequest, PushStatus};

pub(super) const AUTH: &str = "Bearer s3cr3t-t0ken";
pub(super) const LONG: Duration = Duration::from_secs(60);

pub(super) fn config(url: &str, timeout_ms: u64) -> ProviderConfig {
    ProviderConfig {
        base_url: url.to_owned(),
        authorization: Some(AUTH.to_owned()),
        timeout: Duration::from_millis(timeout_ms),
        ca_file: None,
        ca_path: None,
    }
}

pub(super) fn provider(url: &str, timeout_ms: u64) -> HttpPushProvider {
    HttpPushProvider::new(config(url, timeout_ms)).unwrap()
}

pub(super) fn request(request_id: &str) -> PushRequest<'_> {
    PushRequest {
        user: "alice",
        message: "Approve login to vpn-gw-1 for alice?",
        client: "vpn-gw-1",
        request_id,
        number: None,
    }
}

/// Asserts that an error shows nothing of the credential.
pub(super) fn assert_clean(e: &PushError) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("s3cr3t") && !text.contains("Bearer"), "{text}");
    }
}

/// A port on which nothing listens.
pub(super) fn dead_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

/// Polls until the status is no longer pending, at most `limit`.
pub(super) fn wait_answer(p: &dyn PushProvider, id: &str, limit: Duration) -> (PushStatus, usize) {
    let deadline = Instant::now() + limit;
    let mut polls = 0;
    loop {
        let status = p.status(id).unwrap();
        polls += 1;
        if status != PushStatus::Pending || Instant::now() >= deadline {
            return (status, polls);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! What a login's waits must fit in: the server's `max_request_time`, after which
//! FreeRADIUS abandons the request (the NAS then gets no answer at all). Checked at
//! start-up against the longest a backend or the push provider may make a login
//! wait, with what the state store may add to it.

use std::time::Duration;

/// The server's `max_request_time` and the wait the state store may add to a login.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestTime {
    /// radiusd.conf's `max_request_time`, in seconds; 0 when unknown (no check).
    pub max_request_time: u32,
    /// With `state_store = redis`: the budget of the request that waits
    /// (3 x `redis.timeout_ms`, README "What happens when Redis fails"); else zero.
    pub store_wait: Duration,
}

impl RequestTime {
    /// None when a login whose own waits take `longest` seconds (`how`, for the
    /// words: "" or " (wait 15 + ...)"), and the store's on top, ends before the
    /// server gives up; else the error's words, which name `max_request_time`
    /// and what to change.
    pub fn refuses(&self, what: &str, longest: u32, how: &str) -> Option<String> {
        if self.max_request_time == 0 {
            return None;
        }
        let total = Duration::from_secs(u64::from(longest)) + self.store_wait;
        if total < Duration::from_secs(u64::from(self.max_request_time)) {
            return None;
        }
        let store = if self.store_wait.is_zero() {
            String::new()
        } else {
            format!(" and {:.1} s more on the Redis state store (3 x redis.timeout_ms)", self.store_wait.as_secs_f64())
        };
        Some(format!(
            "{what} may take {longest} s{how}{store}, not less than the server's max_request_time of {} s: lower it, \
             or raise max_request_time in radiusd.conf",
            self.max_request_time
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_s_wait_counts_toward_max_request_time() {
        let journal = RequestTime { max_request_time: 30, store_wait: Duration::ZERO };
        assert_eq!(journal.refuses("a login", 29, ""), None);
        let too_long = journal.refuses("a login", 30, "").unwrap();
        assert!(too_long.starts_with("a login may take 30 s, not less than"), "{too_long}");
        let redis = RequestTime { max_request_time: 30, store_wait: Duration::from_millis(1500) };
        assert_eq!(redis.refuses("a login", 28, ""), None, "28 + 1.5 < 30");
        let too_long = redis.refuses("a push", 29, " (wait 19 + 2 x timeout 5)").unwrap();
        assert!(
            too_long.contains("a push may take 29 s (wait 19 + 2 x timeout 5) and 1.5 s more on the Redis state store"),
            "{too_long}"
        );
        assert!(too_long.contains("max_request_time of 30 s"), "{too_long}");
        assert_eq!(RequestTime::default().refuses("a login", 1_000, ""), None, "unknown: not checked");
    }
}

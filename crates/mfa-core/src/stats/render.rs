//! The counters in the Prometheus text exposition format, version 0.0.4.

use std::fmt::Write;

use super::{Cause, Failure, Push, Snapshot, BUCKETS};

/// The text of the file: every metric with its HELP and TYPE lines, each sample
/// labelled `module="<instance name>"`; `written` is the time of writing (Unix seconds).
pub fn render(module: &str, counts: &Snapshot, written: u64) -> String {
    let module = escape(module);
    let mut out = String::with_capacity(2048);
    let single = |out: &mut String, name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP rlm_mfa_{name} {help}");
        let _ = writeln!(out, "# TYPE rlm_mfa_{name} {kind}");
        let _ = writeln!(out, "rlm_mfa_{name}{{module=\"{module}\"}} {value}");
    };
    // A counter with one label, a sample per value of it.
    let labelled = |out: &mut String, name: &str, help: &str, label: &str, samples: Vec<(&str, u64)>| {
        let _ = writeln!(out, "# HELP rlm_mfa_{name} {help}");
        let _ = writeln!(out, "# TYPE rlm_mfa_{name} counter");
        for (value_of_label, value) in samples {
            let _ = writeln!(out, "rlm_mfa_{name}{{module=\"{module}\",{label}=\"{value_of_label}\"}} {value}");
        }
    };
    single(&mut out, "accepts_total", "counter", "Logins the module accepted.", counts.accepts);
    let failsafe =
        "Logins accepted on the first factor alone because the push provider or Duo failed (failmode = safe).";
    single(&mut out, "failsafe_accepts_total", "counter", failsafe, counts.failsafe_accepts);
    let rejects = Cause::ALL.map(|cause| (cause.label(), counts.rejects(cause))).to_vec();
    labelled(&mut out, "rejects_total", "Logins the module refused, by cause.", "cause", rejects);
    single(&mut out, "challenges_total", "counter", "Access-Challenges the module sent.", counts.challenges);
    let pushes = Push::ALL.map(|push| (push.label(), counts.pushes(push))).to_vec();
    labelled(&mut out, "pushes_total", "Push approvals asked for, by how they ended.", "outcome", pushes);
    single(&mut out, "lockouts_total", "counter", "Users locked by lockout.max_failures.", counts.lockouts);
    let failures = Failure::ALL.map(|kind| (kind.label(), counts.failures(kind))).to_vec();
    labelled(&mut out, "failures_total", "Outgoing calls that failed, by what was called.", "kind", failures);
    if !counts.calls.is_empty() {
        let name = "rlm_mfa_call_duration_seconds";
        let _ = writeln!(out, "# HELP {name} How long outgoing calls took.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (call, latency) in &counts.calls {
            let labels = format!("module=\"{module}\",call=\"{}\"", call.label());
            for (bound, count) in BUCKETS.iter().zip(latency.buckets) {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", latency.count);
            let sum = format!("{}.{:06}", latency.sum_micros / 1_000_000, latency.sum_micros % 1_000_000);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", latency.count);
        }
    }
    single(
        &mut out,
        "stats_written_timestamp_seconds",
        "gauge",
        "When the module wrote this file (Unix time).",
        written,
    );
    out
}

/// A label value: backslash, double quote and line feed escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Counters, Tally};

    #[test]
    fn the_text_is_exact() {
        let c = Counters::default();
        c.count(Tally::Accept);
        c.count(Tally::Accept);
        c.count(Tally::PushApproved);
        c.count(Tally::FailsafeAccept);
        c.count(Tally::Challenge);
        c.count(Tally::Reject { cause: Cause::WrongCode, locks: false });
        c.count(Tally::Reject { cause: Cause::LockedOut, locks: true });
        c.count(Tally::Reject { cause: Cause::PushDenied, locks: false });
        let text = render("mfa", &c.snapshot(), 1_700_000_000);
        let expected = r#"# HELP rlm_mfa_accepts_total Logins the module accepted.
# TYPE rlm_mfa_accepts_total counter
rlm_mfa_accepts_total{module="mfa"} 4
# HELP rlm_mfa_failsafe_accepts_total Logins accepted on the first factor alone because the push provider or Duo failed (failmode = safe).
# TYPE rlm_mfa_failsafe_accepts_total counter
rlm_mfa_failsafe_accepts_total{module="mfa"} 1
# HELP rlm_mfa_rejects_total Logins the module refused, by cause.
# TYPE rlm_mfa_rejects_total counter
rlm_mfa_rejects_total{module="mfa",cause="wrong_code"} 1
rlm_mfa_rejects_total{module="mfa",cause="replayed"} 0
rlm_mfa_rejects_total{module="mfa",cause="locked_out"} 1
rlm_mfa_rejects_total{module="mfa",cause="no_token"} 0
rlm_mfa_rejects_total{module="mfa",cause="bad_state"} 0
rlm_mfa_rejects_total{module="mfa",cause="rate_limited"} 0
rlm_mfa_rejects_total{module="mfa",cause="malformed"} 0
rlm_mfa_rejects_total{module="mfa",cause="unavailable"} 0
rlm_mfa_rejects_total{module="mfa",cause="push_denied"} 1
rlm_mfa_rejects_total{module="mfa",cause="push_timeout"} 0
rlm_mfa_rejects_total{module="mfa",cause="push_failed"} 0
rlm_mfa_rejects_total{module="mfa",cause="denied"} 0
rlm_mfa_rejects_total{module="mfa",cause="unverified"} 0
# HELP rlm_mfa_challenges_total Access-Challenges the module sent.
# TYPE rlm_mfa_challenges_total counter
rlm_mfa_challenges_total{module="mfa"} 1
# HELP rlm_mfa_pushes_total Push approvals asked for, by how they ended.
# TYPE rlm_mfa_pushes_total counter
rlm_mfa_pushes_total{module="mfa",outcome="approved"} 1
rlm_mfa_pushes_total{module="mfa",outcome="denied"} 1
rlm_mfa_pushes_total{module="mfa",outcome="timeout"} 0
rlm_mfa_pushes_total{module="mfa",outcome="failed"} 1
# HELP rlm_mfa_lockouts_total Users locked by lockout.max_failures.
# TYPE rlm_mfa_lockouts_total counter
rlm_mfa_lockouts_total{module="mfa"} 1
# HELP rlm_mfa_failures_total Outgoing calls that failed, by what was called.
# TYPE rlm_mfa_failures_total counter
rlm_mfa_failures_total{module="mfa",kind="provider"} 0
rlm_mfa_failures_total{module="mfa",kind="gateway"} 0
rlm_mfa_failures_total{module="mfa",kind="store"} 0
# HELP rlm_mfa_stats_written_timestamp_seconds When the module wrote this file (Unix time).
# TYPE rlm_mfa_stats_written_timestamp_seconds gauge
rlm_mfa_stats_written_timestamp_seconds{module="mfa"} 1700000000
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn a_used_call_has_its_histogram() {
        let c = Counters::default();
        c.observe(crate::stats::Call::Gateway, std::time::Duration::from_millis(70), true);
        let text = render("mfa", &c.snapshot(), 0);
        let expected = r#"rlm_mfa_failures_total{module="mfa",kind="gateway"} 1
rlm_mfa_failures_total{module="mfa",kind="store"} 0
# HELP rlm_mfa_call_duration_seconds How long outgoing calls took.
# TYPE rlm_mfa_call_duration_seconds histogram
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="0.01"} 0
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="0.05"} 0
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="0.1"} 1
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="0.25"} 1
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="0.5"} 1
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="1"} 1
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="2.5"} 1
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="10"} 1
rlm_mfa_call_duration_seconds_bucket{module="mfa",call="gateway",le="+Inf"} 1
rlm_mfa_call_duration_seconds_sum{module="mfa",call="gateway"} 0.070000
rlm_mfa_call_duration_seconds_count{module="mfa",call="gateway"} 1
"#;
        assert!(text.contains(expected), "{text}");
    }

    #[test]
    fn a_label_value_is_escaped() {
        let text = render("a\"b\\c\nd", &Snapshot::default(), 0);
        assert!(text.contains(r#"rlm_mfa_accepts_total{module="a\"b\\c\nd"} 0"#), "{text}");
    }
}

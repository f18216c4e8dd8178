//! The counters (`stats { file }`) through a real FreeRADIUS: a known sequence of
//! logins in mode otp-or-push, with the fake push provider, then the file the
//! module writes for node_exporter's textfile collector is read back, every count
//! checked exactly, and `mfa-admin stats` prints it.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::fake_push::{FakePush, PushBehaviour};
use common::{now, settle_in_step, totp_at, totp_tokens, wait_for_lines as wait_for, Server, Setup};

fn setup(provider: &FakePush) -> Setup {
    setup_with_push(provider, "")
}

/// The set-up with `extra` items in its `push { }` section.
fn setup_with_push(provider: &FakePush, extra: &str) -> Setup {
    let mut setup = Setup::challenge_mode("otp-or-push", &totp_tokens(&["alice", "carol"]), &[("alice", "pw-alice")])
        .with(&format!(
            "stats {{\n file = ${{confdir}}/mfa.prom\n interval = 1\n}}\nlockout {{\n max_failures = 4\n}}\n\
             push {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n approval = challenge\n {extra}\n}}",
            provider.url()
        ));
    setup.site = Some(fs::read_to_string(common::repo().join("freeradius-conf/sites-available/mfa")).unwrap());
    setup
}

#[test]
fn a_known_sequence_of_logins_is_counted_exactly() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let server = Server::start(&module, &setup(&provider));
    let file = server.dir.join("mfa.prom");

    // A push, approved: a challenge, then an accept.
    let first = server.auth("alice", "pw-alice");
    assert!(first.is_challenge(), "{first:?}");
    let approved = server.answer("alice", "ok", first.state());
    assert!(approved.is_accept(), "{approved:?}");
    // The same State again: refused.
    let again = server.answer("alice", "ok", first.state());
    assert!(again.is_reject(), "{again:?}");

    // A code, accepted, then replayed; a wrong one; someone without a token.
    settle_in_step(5);
    let code = totp_at(now());
    assert!(server.auth("alice", &code).is_accept());
    assert!(server.auth("alice", &code).is_reject());
    assert!(server.auth("alice", "000000").is_reject());
    assert!(server.auth("nobody", "123456").is_reject());

    // A push, denied.
    provider.set_behaviour(PushBehaviour::DenyAfter(Duration::ZERO));
    let second = server.auth("alice", "pw-alice");
    assert!(second.is_challenge(), "{second:?}");
    let denied = server.answer("alice", "ok", second.state());
    assert_eq!(denied.message(), Some("The login was denied on your device"), "{denied:?}");

    // Four wrong codes lock carol; a fifth finds her locked.
    for _ in 0..5 {
        assert!(server.auth("carol", "000000").is_reject());
    }

    let m = "module=\"mfa\"";
    let mut expected = vec![
        format!("rlm_mfa_accepts_total{{{m}}} 2"),
        format!("rlm_mfa_failsafe_accepts_total{{{m}}} 0"),
        format!("rlm_mfa_challenges_total{{{m}}} 2"),
        format!("rlm_mfa_lockouts_total{{{m}}} 1"),
    ];
    for (cause, count) in [
        // Alice's wrong code and three of carol's (her fourth locks); "nobody" has no
        // token, counted as in mode otp.
        ("wrong_code", 4),
        ("replayed", 1),
        ("locked_out", 2),
        ("no_token", 1),
        ("bad_state", 1),
        ("rate_limited", 0),
        ("malformed", 0),
        ("unavailable", 0),
        ("push_denied", 1),
        ("push_timeout", 0),
        ("push_failed", 0),
        ("denied", 0),
        ("unverified", 0),
    ] {
        expected.push(format!("rlm_mfa_rejects_total{{{m},cause=\"{cause}\"}} {count}"));
    }
    for (outcome, count) in [("approved", 1), ("denied", 1), ("timeout", 0), ("failed", 0)] {
        expected.push(format!("rlm_mfa_pushes_total{{{m},outcome=\"{outcome}\"}} {count}"));
    }
    // Every call to the push provider timed; none failed.
    for (kind, count) in [("provider", 0), ("gateway", 0)] {
        expected.push(format!("rlm_mfa_failures_total{{{m},kind=\"{kind}\"}} {count}"));
    }
    let calls = provider.calls();
    expected.push(format!("rlm_mfa_call_duration_seconds_count{{{m},call=\"push\"}} {calls}"));
    expected.push(format!("rlm_mfa_call_duration_seconds_bucket{{{m},call=\"push\",le=\"+Inf\"}} {calls}"));
    let text = wait_for(&file, &expected);
    assert!(!text.contains("call=\"gateway\""), "no gateway is configured: {text}");
    for line in &expected {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    assert!(text.contains("# TYPE rlm_mfa_rejects_total counter\n"), "{text}");
    assert!(text.contains("# TYPE rlm_mfa_stats_written_timestamp_seconds gauge\n"), "{text}");

    // mfa-admin stats reads the file the module's configuration names.
    let table = server.admin(&["stats"]);
    let out = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{out}{}", String::from_utf8_lossy(&table.stderr));
    assert!(out.lines().next().unwrap().ends_with("mfa.prom"), "it says which file it read: {out}");
    let row = |name: &str| out.lines().find(|l| l.split_whitespace().next() == Some(name)).map(str::to_string);
    assert_eq!(row("accepts").unwrap().split_whitespace().last(), Some("2"), "{out}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["rejects", "cause=wrong_code", "4"]),
        "{out}"
    );
    let count = ["call_duration_seconds_count", "call=push", &calls.to_string()].map(String::from).to_vec();
    assert!(out.lines().any(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>() == count), "{out}");
    assert!(!out.contains("_bucket"), "the buckets are Prometheus's: {out}");
    let raw = server.admin(&["stats", "--prometheus"]);
    assert!(raw.status.success());
    assert!(String::from_utf8_lossy(&raw.stdout).lines().any(|l| l == expected[0]), "{raw:?}");

    // A missing file says so, with exit status 1.
    let missing = server.admin(&["stats", "--file", &server.dir.join("none.prom").display().to_string()]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("none.prom does not exist"), "{missing:?}");
}

/// An Accept the module did not check (here a policy sets Auth-Type := Accept
/// before it) is refused by the post-auth check and counted as `unverified`.
#[test]
fn an_accept_refused_by_the_post_auth_check_counts_as_unverified() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let mut setup = setup(&provider);
    let site = setup.site.take().unwrap();
    let at = site.find("authorize {\n").expect("the site's authorize section") + "authorize {\n".len();
    setup.site = Some(format!("{}\tupdate control {{\n\t\t&Auth-Type := Accept\n\t}}\n{}", &site[..at], &site[at..]));
    let server = Server::start(&module, &setup);
    let refused = server.auth("alice", "pw-alice");
    assert!(refused.is_reject(), "{refused:?}");
    let line = "rlm_mfa_rejects_total{module=\"mfa\",cause=\"unverified\"} 1".to_string();
    let accepts = "rlm_mfa_accepts_total{module=\"mfa\"} 0".to_string();
    let text = wait_for(&server.dir.join("mfa.prom"), &[line.clone(), accepts.clone()]);
    assert!(text.lines().any(|l| l == line) && text.lines().any(|l| l == accepts), "{text}");
}

/// A login let in on the password alone because the provider failed (`failmode =
/// safe`) is an accept, a fail-safe accept and a failed push, and the failed call.
#[test]
fn a_failmode_safe_accept_is_counted_apart() {
    let module = require_module!();
    let provider = FakePush::start(PushBehaviour::Error500);
    let server = Server::start(&module, &setup_with_push(&provider, "failmode = safe"));
    let accepted = server.auth("alice", "pw-alice");
    assert!(accepted.is_accept(), "{accepted:?}");
    let m = "module=\"mfa\"";
    let expected = [
        format!("rlm_mfa_accepts_total{{{m}}} 1"),
        format!("rlm_mfa_failsafe_accepts_total{{{m}}} 1"),
        format!("rlm_mfa_pushes_total{{{m},outcome=\"failed\"}} 1"),
        format!("rlm_mfa_failures_total{{{m},kind=\"provider\"}} {}", provider.calls()),
    ];
    let text = wait_for(&server.dir.join("mfa.prom"), &expected);
    for line in &expected {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    let table = server.admin(&["stats"]);
    let out = String::from_utf8_lossy(&table.stdout);
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["failsafe_accepts", "1"]), "{out}");
}

#[test]
fn a_stats_file_that_cannot_be_written_stops_the_server_naming_the_item() {
    let module = require_module!();
    let setup = Setup::otp_mode(&totp_tokens(&["alice"])).with("stats {\n file = ${confdir}/no-such-dir/mfa.prom\n}");
    let output = Server::start_failing(&module, &setup);
    assert!(output.contains("invalid 'stats.file'"), "{output}");
}

#[test]
fn without_a_stats_file_nothing_is_written() {
    let module = require_module!();
    let server = Server::start(&module, &Setup::otp_mode(&totp_tokens(&["alice"])));
    settle_in_step(5);
    assert!(server.auth("alice", &totp_at(now())).is_accept());
    let proms: Vec<_> = walk(&server.dir).into_iter().filter(|p| p.ends_with(".prom")).collect();
    assert!(proms.is_empty(), "{proms:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

//! The shared state store (`state_store = redis`) through real FreeRADIUS
//! servers and a real Redis: a code, an answered State and the lockout hold
//! across the servers of a farm, and a Redis that is down refuses logins
//! (never a silent fall back to per-server state) until it is back.

mod common;
#[path = "common/raw_radius.rs"]
mod raw_radius;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::fake_gateway::{Behaviour, FakeGateway};
use common::fake_push::{FakePush, PushBehaviour};
use common::redis::RedisServer;
use common::{Server, Setup, SECRET};
use mfa_core::factor::otp::{hotp_code, Algorithm};
use raw_radius::{Client, Request};

const SEED: &[u8] = b"12345678901234567890";
const KEY: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\n";
const UNAVAILABLE: &str = "Authentication is unavailable, try again later";

fn hotp(counter: u64) -> String {
    hotp_code(SEED, counter, 6, Algorithm::Sha1)
}

fn hotp_tokens(users: &[&str]) -> String {
    let entries: Vec<String> = users
        .iter()
        .map(|u| {
            format!(r#""{u}": {{"tokens": [{{"serial": "H-{u}", "type": "hotp", "secret": "{}"}}]}}"#, common::SEED_B32)
        })
        .collect();
    format!(r#"{{"users": {{{}}}}}"#, entries.join(", "))
}

/// The module's lines for the shared store at `redis`.
fn store_lines(redis: &RedisServer, extra: &str) -> String {
    format!("state_store = redis\nredis {{\n\tserver = {}\n\tprefix = t\n{extra}}}\n", redis.address())
}

/// Two servers of one farm: the same token file, State key and Redis.
fn farm(module: &std::path::Path, setup: Setup, n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::start(module, &setup)).collect()
}

/// Each login (user, password) sent to every server at the same instant, one
/// login after another: for each server, whether each login was accepted.
fn at_once(servers: &[Server], logins: &[(String, String)]) -> Vec<Vec<bool>> {
    together(servers, &vec![logins.to_vec(); servers.len()])
}

/// The i-th logins of every server's list sent at the same instant (server k
/// sends `logins[k]`), one i after another: for each server, which were accepted.
fn together(servers: &[Server], logins: &[Vec<(String, String)>]) -> Vec<Vec<bool>> {
    let barrier = Arc::new(Barrier::new(servers.len()));
    let workers: Vec<_> = servers
        .iter()
        .zip(logins)
        .map(|(server, logins)| {
            let (port, barrier, logins) = (server.port, barrier.clone(), logins.clone());
            thread::spawn(move || {
                let mut client = Client::new(port, SECRET, Duration::from_secs(10));
                logins
                    .iter()
                    .map(|(user, password)| {
                        let request = Request::new().user(user).password(password.as_bytes());
                        barrier.wait();
                        client.send(&request).expect("an answer").is_accept()
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    workers.into_iter().map(|w| w.join().unwrap()).collect()
}

#[test]
fn the_same_code_sent_to_two_servers_at_the_same_instant_is_accepted_once() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    // A replay counts as a failure; no lockout here, the test is about the claim.
    let setup = Setup::otp_mode(&hotp_tokens(&["race"]))
        .with(&store_lines(&redis, ""))
        .with("lockout {\n\tmax_failures = 0\n}");
    let servers = farm(&module, setup, 2);
    let trials: u64 = std::env::var("RLM_MFA_RACE_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let logins: Vec<(String, String)> = (0..trials).map(|counter| ("race".to_string(), hotp(counter))).collect();
    let answers = at_once(&servers, &logins);
    for counter in 0..trials as usize {
        let accepted = answers.iter().filter(|a| a[counter]).count();
        assert_eq!(accepted, 1, "code of counter {counter}: {accepted} Accepts from two servers");
    }
}

/// The lockout holds to `max_failures` across the farm even for guesses that
/// reach two servers at the same instant: with one failure counted and
/// `max_failures = 2`, a wrong code on one server and the right one on the other,
/// together, for 200 users (HOTP: the path that reads the lock before it checks
/// the code). The right code is accepted only when its claim reaches Redis
/// before the failure that locks (the success clears the count, and the wrong
/// code then counts 1); once that failure is in, it is refused as locked, on
/// any server, even when its server read the count before the lock.
#[test]
fn a_right_code_racing_the_failure_that_locks_is_judged_in_redis_order() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let users: Vec<String> = (0..200).map(|i| format!("g{i}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let setup = Setup::otp_mode(&hotp_tokens(&names))
        .with(&store_lines(&redis, ""))
        .with("lockout {\n\tmax_failures = 2\n\tduration = 300\n}");
    let servers = farm(&module, setup, 2);
    for user in &users {
        assert!(servers[0].auth(user, "000000").is_reject());
    }
    let wrong: Vec<(String, String)> = users.iter().map(|u| (u.clone(), "000000".to_string())).collect();
    let right: Vec<(String, String)> = users.iter().map(|u| (u.clone(), hotp(0))).collect();
    let answers = together(&servers, &[wrong, right]);
    let mut accepted = 0;
    for (i, user) in users.iter().enumerate() {
        let failures = redis.cli(&["HGET", &format!("t:lock:{user}"), "f"]).trim().to_string();
        if answers[1][i] {
            accepted += 1;
            assert_eq!(failures, "1", "{user}: the right code was accepted after the failure that locked");
        } else {
            assert_eq!(failures, "2", "{user}: the right code was refused, the user is not locked");
        }
    }
    eprintln!("{accepted} of {} right codes came before the locking failure", users.len());
}

#[test]
fn a_state_answered_on_one_server_is_refused_on_every_other_and_after_kill_9() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let setup = Setup::challenge_mode("password-then-otp", &hotp_tokens(&["carol"]), &[("carol", "pw")])
        .file("mods-config/mfa/state.key", KEY)
        .with(&store_lines(&redis, ""));
    let mut servers = farm(&module, setup, 3);
    let challenge = servers[0].auth("carol", "pw");
    assert!(challenge.is_challenge(), "{challenge:?}");
    let state = challenge.state().to_string();
    assert!(servers[1].answer("carol", &hotp(0), &state).is_accept());
    // Kept in Redis until the State expires (challenge_timeout, 180 s by default), not longer.
    let answered: Vec<String> = redis.cli(&["KEYS", "t:state:*"]).lines().map(str::to_string).collect();
    assert_eq!(answered.len(), 1, "{answered:?}");
    let ttl: i64 = redis.cli(&["TTL", &answered[0]]).trim().parse().unwrap();
    assert!((1..=180).contains(&ttl), "the answered State expires with the State: {ttl}");
    // The same State with the next valid code, on the other servers: refused.
    let again = servers[0].answer("carol", &hotp(1), &state);
    assert!(again.is_reject(), "{again:?}");
    assert!(servers[2].answer("carol", &hotp(2), &state).is_reject());
    // The server that answered it, killed and restarted: it still knows.
    servers[1].restart();
    assert!(servers[1].answer("carol", &hotp(3), &state).is_reject());
    // The code of counter 3 was not taken by a refused State: a fresh login uses it.
    let fresh = servers[2].auth("carol", "pw");
    assert!(servers[0].answer("carol", &hotp(3), fresh.state()).is_accept());
}

#[test]
fn a_dialogue_started_on_a_server_killed_midway_is_finished_by_its_partner() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let setup = Setup::challenge_mode("password-then-otp", &hotp_tokens(&["dave"]), &[("dave", "pw")])
        .file("mods-config/mfa/state.key", KEY)
        .with(&store_lines(&redis, ""));
    let mut servers = farm(&module, setup, 2);
    let challenge = servers[0].auth("dave", "pw");
    assert!(challenge.is_challenge(), "{challenge:?}");
    servers[0].kill9();
    assert!(servers[1].answer("dave", &hotp(0), challenge.state()).is_accept());
}

#[test]
fn the_lockout_counts_failures_from_every_server_together() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let setup = Setup::otp_mode(&hotp_tokens(&["erin"]))
        .with(&store_lines(&redis, ""))
        .with("lockout {\n\tmax_failures = 3\n\tduration = 300\n}");
    let servers = farm(&module, setup, 3);
    for (i, server) in servers.iter().enumerate() {
        let wrong = server.auth("erin", "000000");
        assert!(wrong.is_reject(), "failure {i}: {wrong:?}");
    }
    // Three failures in all, one per server: locked on each, the right code too.
    for server in &servers {
        let right = server.auth("erin", &hotp(0));
        assert!(right.is_reject(), "{right:?}");
        assert!(right.message().unwrap_or_default().contains("Too many failed attempts"), "{right:?}");
    }
    assert_eq!(redis.cli(&["HGET", "t:lock:erin", "f"]).trim(), "3");
    let ttl: i64 = redis.cli(&["TTL", "t:lock:erin"]).trim().parse().unwrap();
    assert!(ttl > 300, "the lock's key expires, after the lock: {ttl}");
}

#[test]
fn with_redis_down_logins_are_refused_within_the_bound_and_come_back_with_it() {
    let (module, bin) = require_redis!();
    let mut redis = RedisServer::start(&bin);
    let setup = Setup::otp_mode(&hotp_tokens(&["frank"])).with(&store_lines(&redis, "\ttimeout_ms = 200\n"));
    let server = Server::start(&module, &setup);
    assert!(server.auth("frank", &hotp(0)).is_accept());
    redis.stop();
    for counter in [1, 2] {
        let started = Instant::now();
        let refused = server.auth("frank", &hotp(counter));
        assert!(refused.is_reject(), "{refused:?}");
        assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "a request waited {:?}", started.elapsed());
    }
    let log = server.debug_log();
    assert!(log.contains("Redis store 127.0.0.1:"), "the log names the store:\n{}", common::tail(&log, 30));
    // Back (empty: it persisted nothing): service resumes on the next request.
    redis.restart();
    assert!(server.auth("frank", &hotp(1)).is_accept());
    assert!(server.auth("frank", &hotp(1)).is_reject(), "replay refused again");
}

/// A push login with Redis down is refused as any login is then ("unavailable",
/// not the push's own words), and no push goes out.
#[test]
fn with_redis_down_a_push_login_is_refused_as_unavailable_and_sends_no_push() {
    let (module, bin) = require_redis!();
    let mut redis = RedisServer::start(&bin);
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let setup = Setup::challenge_mode("push", r#"{"users": {"kate": {}}}"#, &[("kate", "pw-kate")])
        .file("mods-config/mfa/state.key", KEY)
        .with(&store_lines(&redis, "\ttimeout_ms = 200\n"))
        .with(&format!("push {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n}}", provider.url()));
    let server = Server::start(&module, &setup);
    assert!(server.auth("kate", "pw-kate").is_accept(), "approved while Redis is up");
    assert_eq!(provider.created(), 1);
    redis.stop();
    let refused = server.auth("kate", "pw-kate");
    assert!(refused.is_reject(), "{refused:?}");
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
    assert_eq!(provider.created(), 1, "no push without the store to register it in");
    let log = server.debug_log();
    assert!(log.contains("cannot register the push in the Redis store"), "{}", common::tail(&log, 30));
}

/// `database` selects where the keys go: replay protection works there, and
/// database 0 stays empty.
#[test]
fn the_keys_go_to_the_configured_database() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let setup = Setup::otp_mode(&hotp_tokens(&["lena"])).with(&store_lines(&redis, "\tdatabase = 7\n"));
    let server = Server::start(&module, &setup);
    assert!(server.auth("lena", &hotp(0)).is_accept());
    assert!(server.auth("lena", &hotp(0)).is_reject(), "replay refused");
    assert_eq!(
        redis.cli(&["-n", "7", "HGET", "t:tokens:lena", "h:H-lena"]).trim(),
        "1",
        "the next counter, in database 7"
    );
    assert_eq!(redis.cli(&["-n", "0", "DBSIZE"]).trim(), "0", "nothing in database 0");
}

#[test]
fn a_broken_redis_section_stops_the_start_naming_the_item() {
    let Some(module) = common::module_dir() else { return };
    for (lines, item) in [
        ("state_store = redis\nredis {\n\tserver = \"a:1 b:2\"\n}\n", "redis.server"),
        ("state_store = redis\nredis {\n\ttls = yes\n\tca_file = /nonexistent/ca.pem\n}\n", "redis.ca_file"),
        ("state_store = redis\nredis {\n\ttimeout_ms = 5\n}\n", "redis.timeout_ms"),
        ("state_store = redis\nredis {\n\ttimeout_ms = 10001\n}\n", "redis.timeout_ms"),
        // Checked against its range with the journal too (README, "redis { }").
        ("redis {\n\ttimeout_ms = 5\n}\n", "redis.timeout_ms"),
        ("state_store = redis\nredis {\n\twait_replicas = 11\n}\n", "redis.wait_replicas"),
        ("state_store = redis\nredis {\n\tprefix = \"a b\"\n}\n", "redis.prefix"),
        ("state_store = redis\nredis {\n\ttls = yes\n\tca_path = /nonexistent/certs\n}\n", "redis.ca_path"),
        ("state_store = memcached\n", "state_store"),
    ] {
        let out = Server::start_failing(&module, &Setup::otp_mode(&hotp_tokens(&["x"])).with(lines));
        assert!(out.contains(&format!("'{item}'")), "{item}:\n{}", common::tail(&out, 20));
    }
    // A ca_path that exists but holds no certificate trusts nothing: a mistake.
    let no_ca = Setup::otp_mode(&hotp_tokens(&["x"]))
        .file("mods-config/mfa/no-ca/README", "not a certificate\n")
        .with("state_store = redis\nredis {\n\ttls = yes\n\tca_path = ${modconfdir}/mfa/no-ca\n}\n");
    let out = Server::start_failing(&module, &no_ca);
    assert!(out.contains("'redis.ca_path'") && out.contains("no PEM certificate"), "{}", common::tail(&out, 20));
}

#[test]
fn redis_with_an_acl_user_and_password() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start_with(&bin, "user default off\nuser mfa on >s3cret-pass ~t:* +@all\n");
    let lines = store_lines(&redis, "\tusername = mfa\n\tpassword = \"s3cret-pass\"\n");
    let server = Server::start(&module, &Setup::otp_mode(&hotp_tokens(&["gina"])).with(&lines));
    assert!(server.auth("gina", &hotp(0)).is_accept());
    assert!(server.auth("gina", &hotp(0)).is_reject());
    assert!(!server.debug_log().contains("s3cret-pass"), "the password is never logged");
    // A wrong password: refused as unavailable, and said so in the log.
    let wrong = store_lines(&redis, "\tusername = mfa\n\tpassword = wrong\n");
    let server = Server::start(&module, &Setup::otp_mode(&hotp_tokens(&["gina"])).with(&wrong));
    let refused = server.auth("gina", &hotp(1));
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
}

/// A primary, two replicas and three Sentinels; the primary is killed in the
/// middle of a stream of logins through two servers that WAIT for one replica.
#[test]
fn a_sentinel_failover_during_a_stream_of_logins_accepts_no_code_twice_and_keeps_lockouts() {
    let (module, bin) = require_redis!();
    let mut primary = RedisServer::start(&bin);
    let mut replicas: Vec<RedisServer> =
        (0..2).map(|_| RedisServer::start_with(&bin, &format!("replicaof 127.0.0.1 {}\n", primary.port))).collect();
    let sentinels: Vec<RedisServer> =
        (0..3).map(|_| RedisServer::sentinel(&bin, "mfa-primary", primary.port)).collect();
    let list: Vec<String> = sentinels.iter().map(RedisServer::address).collect();
    let lines = format!(
        "state_store = redis\nredis {{\n\tserver = \"{}\"\n\tsentinel_service = mfa-primary\n\tprefix = t\n\
         \twait_replicas = 1\n\ttimeout_ms = 300\n}}\nlockout {{\n\tmax_failures = 3\n\tduration = 300\n}}\n\
         hotp_look_ahead = 500\n",
        list.join(", ")
    );
    let servers = farm(&module, Setup::otp_mode(&hotp_tokens(&["hank", "iris"])).with(&lines), 2);
    // The replicas have synced before the stream starts (WAIT needs one).
    let joined = Instant::now();
    while !replicas.iter().all(|r| r.cli(&["INFO", "replication"]).contains("master_link_status:up")) {
        assert!(joined.elapsed() < Duration::from_secs(10), "the replicas did not sync");
        thread::sleep(Duration::from_millis(50));
    }
    // Two failures of iris before the failover.
    assert!(servers[0].auth("iris", "000000").is_reject());
    assert!(servers[1].auth("iris", "000000").is_reject());

    let started = Instant::now();
    let (mut accepted, mut unavailable, mut counter) = (Vec::new(), 0, 0u64);
    // The stopped primary's port stays taken (a listener that never answers), so that
    // another test's Redis cannot start there and pass for the old primary come back.
    let mut hold = None;
    while accepted.len() < 30 {
        if accepted.len() >= 10 && hold.is_none() {
            // The primary the Sentinels name now (on a busy machine they may have failed over already).
            let named = sentinels[0].cli(&["SENTINEL", "get-master-addr-by-name", "mfa-primary"]);
            let node = if named.contains(&primary.port.to_string()) {
                &mut primary
            } else {
                replicas.iter_mut().find(|r| named.contains(&r.port.to_string())).expect("a known primary")
            };
            node.stop();
            hold = Some(std::net::TcpListener::bind(("127.0.0.1", node.port)).expect("the old primary's port"));
        }
        let turn = accepted.len() + unavailable;
        let (this, other) = (&servers[turn % 2], &servers[1 - turn % 2]);
        let reply = this.auth("hank", &hotp(counter));
        if reply.is_accept() {
            let replayed = other.auth("hank", &hotp(counter));
            assert!(replayed.is_reject(), "code {counter} accepted twice: {replayed:?}");
            accepted.push(counter);
        } else {
            // Refused while no primary answers (or a claim not yet on a replica):
            // the user types the next code, as a user would.
            assert_eq!(reply.message().unwrap_or_default(), UNAVAILABLE, "code {counter}: {reply:?}");
            unavailable += 1;
            assert!(started.elapsed() < Duration::from_secs(60), "no primary after a minute");
            thread::sleep(Duration::from_millis(100));
        }
        counter += 1;
    }
    // (On a busy machine the Sentinels may fail over before the stop as well: the
    // stream then sees two failovers, or the second between two logins.)
    assert!(hold.is_some(), "the primary was stopped during the stream ({unavailable} logins refused meanwhile)");
    // The Sentinels name another node as the primary now (asked until they agree: a busy machine is slow).
    let stopped = hold.as_ref().map(|h| h.local_addr().unwrap().port()).unwrap_or(0);
    let promoted = (0..100).any(|_| {
        let named = sentinels[0].cli(&["SENTINEL", "get-master-addr-by-name", "mfa-primary"]);
        let moved = !named.contains(&stopped.to_string())
            && std::iter::once(&primary).chain(&replicas).any(|r| named.contains(&r.port.to_string()));
        if !moved {
            thread::sleep(Duration::from_millis(100));
        }
        moved
    });
    assert!(promoted, "a replica was promoted");
    // Every code accepted, before the failover too, is still used on the new primary.
    for counter in &accepted {
        for server in &servers {
            assert!(server.auth("hank", &hotp(*counter)).is_reject(), "code {counter} after the failover");
        }
    }
    // The two failures of iris were kept: a third locks her. (Until the Sentinels have
    // moved the other replica to the new primary, WAIT may find none: unavailable.)
    let third = loop {
        let reply = servers[0].auth("iris", "000000");
        if reply.message().unwrap_or_default() != UNAVAILABLE || started.elapsed() > Duration::from_secs(60) {
            break reply;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(third.message().unwrap_or_default().contains("Too many failed attempts"), "{third:?}");
}

/// Mode push for jane (password pw-jane) with the shared Redis, the module's
/// `extra` items, and a push provider that waits up to 6 s.
fn jane_push_setup(redis: &RedisServer, provider: &FakePush, extra: &str) -> Setup {
    Setup::challenge_mode("push", r#"{"users": {"jane": {}}}"#, &[("jane", "pw-jane")])
        .file("mods-config/mfa/state.key", KEY)
        .with(&store_lines(redis, ""))
        .with(extra)
        .with(&format!("push {{\n url = \"{}\"\n timeout = 2\n poll_interval = 1\n wait = 6\n}}", provider.url()))
}

/// Jane's push login sent to the first server, then, `after` that, re-sent to the
/// second, as a NAS that fails over does: the two replies.
fn re_sent_to_the_other(servers: &[Arc<Server>], after: Duration) -> (common::Reply, common::Reply) {
    let first = {
        let server = servers[0].clone();
        thread::spawn(move || server.auth("jane", "pw-jane"))
    };
    thread::sleep(after);
    let second = servers[1].auth("jane", "pw-jane");
    (first.join().unwrap(), second)
}

/// A NAS that re-sends a push login to the other server, after the first
/// server's push went out: one push at the provider, both answers Accept. The
/// re-send crosses the edge of a `push.wait` window, where the provider's
/// idempotency key alone (the local store's way) would differ.
#[test]
fn a_push_login_re_sent_to_the_other_server_joins_the_first_push() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let provider = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_secs(4)));
    let setup = jane_push_setup(&redis, &provider, "");
    let servers: Vec<Arc<Server>> = farm(&module, setup, 2).into_iter().map(Arc::new).collect();
    // Start in the last second of a 6 s window, so that the re-send falls in the next.
    while common::now() % 6 != 5 {
        thread::sleep(Duration::from_millis(50));
    }
    let (first, second) = re_sent_to_the_other(&servers, Duration::from_millis(1500));
    assert!(first.is_accept() && second.is_accept(), "{first:?} {second:?}");
    assert_eq!(provider.created(), 1, "one push for one login, across two servers");
    // The push registered, and which server saw it end first: two keyed names.
    assert_eq!(redis.cli(&["KEYS", "t:push:*"]).lines().count(), 2, "one push registered, under a keyed name");
}

/// A denied push whose login the NAS re-sent to the other server counts one
/// failure in the farm's lockout, by the server that sent it: the other waits for
/// the same push and refuses the re-send without counting it again. In the
/// counters (each server has its own): a refusal on each, the push denied once,
/// on the server that saw it end first.
#[test]
fn a_denied_push_re_sent_to_the_other_server_counts_one_failure() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::from_secs(3)));
    let setup = jane_push_setup(
        &redis,
        &provider,
        "lockout {\n max_failures = 2\n duration = 600\n}\nstats {\n file = ${confdir}/mfa.prom\n interval = 1\n}",
    );
    let servers: Vec<Arc<Server>> = farm(&module, setup, 2).into_iter().map(Arc::new).collect();
    let (first, second) = re_sent_to_the_other(&servers, Duration::from_millis(1000));
    for reply in [&first, &second] {
        assert_eq!(reply.message(), Some("The login was denied on your device"), "{first:?} {second:?}");
    }
    assert_eq!(provider.created(), 1, "one push for one login, across two servers");
    let refused = ["rlm_mfa_rejects_total{module=\"mfa\",cause=\"push_denied\"} 1".to_string()];
    let denied: Vec<u64> = servers
        .iter()
        .map(|server| {
            // Written after the server's refusal was counted, with the push's end if it counted it.
            let text = common::wait_for_lines(&server.dir.join("mfa.prom"), &refused);
            assert!(text.lines().any(|l| l == refused[0]), "no line {:?} in:\n{text}", refused[0]);
            let sample = "rlm_mfa_pushes_total{module=\"mfa\",outcome=\"denied\"} ";
            text.lines().find_map(|l| l.strip_prefix(sample)?.parse().ok()).unwrap_or_else(|| panic!("{text}"))
        })
        .collect();
    assert_eq!(denied.iter().sum::<u64>(), 1, "the push denied once across the farm: {denied:?}");
    // One failure so far: the next denied login, on either server, is the one that locks.
    let next = servers[1].auth("jane", "pw-jane");
    assert!(next.message().unwrap_or_default().starts_with("Too many failed attempts"), "{next:?}");
}

/// A login refused past `limits.pushes` leaves its push registered in Redis,
/// though none was sent: the same login re-sent to the other server is refused
/// too and sends no push (joining a registration is no way around the limit or
/// the lock, which the same check holds).
#[test]
fn a_refused_logins_re_send_to_the_other_server_sends_no_push() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let provider = FakePush::start(PushBehaviour::DenyAfter(Duration::from_millis(500)));
    let setup = jane_push_setup(&redis, &provider, "limits {\n\tpushes = 1\n\twindow = 600\n}");
    let servers = farm(&module, setup, 2);
    let denied = servers[0].auth("jane", "pw-jane");
    assert_eq!(denied.message(), Some("The login was denied on your device"), "{denied:?}");
    // Another station: another login, refused past the limit after its push was registered.
    let other = "User-Name = \"jane\", User-Password = \"pw-jane\", Calling-Station-Id = \"10.9.9.9\"\n";
    for server in &servers {
        let reply = server.send(other);
        assert!(reply.message().unwrap_or_default().starts_with("Too many approval requests"), "{reply:?}");
    }
    assert_eq!(provider.created(), 1, "no push past the limit, on either server");
}

/// `limits.pushes` counted across the farm: two pushes started through two
/// servers use up a limit of two; the third, on either, is refused.
#[test]
fn the_push_limit_holds_across_the_farm() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let provider = FakePush::start(PushBehaviour::NeverAnswer);
    let setup = Setup::challenge_mode("push", r#"{"users": {"kate": {}}}"#, &[("kate", "pw-kate")])
        .file("mods-config/mfa/state.key", KEY)
        .with(&store_lines(&redis, ""))
        .with("limits {\n\tpushes = 2\n\twindow = 600\n}")
        .with(&format!("push {{\n url = \"{}\"\n timeout = 2\n approval = challenge\n}}", provider.url()));
    let servers = farm(&module, setup, 2);
    assert!(servers[0].auth("kate", "pw-kate").is_challenge());
    assert!(servers[1].auth("kate", "pw-kate").is_challenge());
    let third = servers[0].auth("kate", "pw-kate");
    assert!(third.is_reject(), "{third:?}");
    let message = third.message().unwrap_or_default();
    assert!(message.starts_with("Too many approval requests: try again in "), "{third:?}");
    assert_eq!(provider.created(), 2, "no third push reached the provider");
    let ttl: i64 = redis.cli(&["TTL", "t:count:push:kate"]).trim().parse().unwrap();
    assert!((1..=600).contains(&ttl), "the count expires with limits.window: {ttl}");
}

fn admin_ok(server: &Server, args: &[&str]) -> (String, String) {
    let out = server.admin(args);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "mfa-admin {args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

/// mfa-admin finds the store in the module's configuration (--module) and
/// acts on Redis: list, unlock, check --consume, remove; it says which store.
#[test]
fn mfa_admin_acts_on_the_redis_store_the_servers_share() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let setup = Setup::otp_mode(&hotp_tokens(&["liam"]))
        .with(&store_lines(&redis, ""))
        .with("lockout {\n\tmax_failures = 2\n\tduration = 300\n}");
    let servers = farm(&module, setup, 2);
    servers[0].auth("liam", "000000");
    servers[1].auth("liam", "000000");
    let (listed, said) = admin_ok(&servers[0], &["list", "liam"]);
    assert!(said.contains("state in the Redis store 127.0.0.1:"), "{said}");
    assert!(listed.contains("LOCKED for") && listed.contains("2 failure(s)"), "{listed}");
    admin_ok(&servers[0], &["unlock", "liam"]);
    assert!(servers[1].auth("liam", &hotp(0)).is_accept(), "unlocked on every server");
    // A code taken by mfa-admin is used for the servers too.
    let (checked, _) = admin_ok(&servers[0], &["check", "liam", &hotp(1), "--consume"]);
    assert!(checked.contains("recorded as used"), "{checked}");
    assert!(servers[1].auth("liam", &hotp(1)).is_reject());
    let (listed, _) = admin_ok(&servers[1], &["list", "liam"]);
    assert!(listed.contains("next counter 2"), "{listed}");
    admin_ok(&servers[0], &["remove", "liam"]);
    assert_eq!(redis.cli(&["EXISTS", "t:tokens:liam", "t:lock:liam"]).trim(), "0", "nothing of liam is left");
}

/// `mfa-admin move-state-to-redis` of the journal at `state` (and the token file at
/// `tokens`) into `shared`'s store.
fn move_journal(tokens: &std::path::Path, state: &std::path::Path, shared: &Server) -> std::process::Output {
    std::process::Command::new(common::admin_bin())
        .arg("--tokens")
        .arg(tokens)
        .arg("--state")
        .arg(state)
        .arg("--module")
        .arg(shared.module_conf_path())
        .arg("move-state-to-redis")
        .output()
        .unwrap()
}

/// `mfa-admin move-state-to-redis` from `local`'s journal into `shared`'s store: what it said.
fn move_state(local: &Server, shared: &Server) -> String {
    let out = move_journal(&local.tokens_path(), &local.state_path(), shared);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    said
}

/// The move copies the answered States too: a State answered before the move
/// is refused after it, with a code never used, and a fresh login takes that code.
#[test]
fn mfa_admin_moves_the_answered_states_into_redis() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let tokens = hotp_tokens(&["olga"]);
    let challenge = |store: &str| {
        Setup::challenge_mode("password-then-otp", &tokens, &[("olga", "pw-olga")])
            .file("mods-config/mfa/state.key", KEY)
            .with(store)
    };
    let local = Server::start(&module, &challenge(""));
    let asked = local.auth("olga", "pw-olga");
    assert!(asked.is_challenge(), "{asked:?}");
    let state = asked.state().to_string();
    assert!(local.answer("olga", &hotp(0), &state).is_accept());
    let shared = Server::start(&module, &challenge(&store_lines(&redis, "")));
    let said = move_state(&local, &shared);
    assert!(said.contains("1 answered State(s)"), "{said}");
    assert!(shared.answer("olga", &hotp(1), &state).is_reject(), "a State answered before the move");
    let fresh = shared.auth("olga", "pw-olga");
    assert!(shared.answer("olga", &hotp(1), fresh.state()).is_accept(), "the code was not used by the refusal");
}

/// A server moving from its journal to Redis: mfa-admin copies the journal,
/// so that no code used before the move is good after it, and locks hold.
#[test]
fn mfa_admin_moves_a_state_journal_into_redis() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let tokens = hotp_tokens(&["mia", "noah"]);
    let lockout = "lockout {\n\tmax_failures = 2\n\tduration = 300\n}";
    let local = Server::start(&module, &Setup::otp_mode(&tokens).with(lockout));
    for counter in 0..3 {
        assert!(local.auth("mia", &hotp(counter)).is_accept());
    }
    local.auth("noah", "000000");
    local.auth("noah", "000000");
    let shared = Server::start(&module, &Setup::otp_mode(&tokens).with(&store_lines(&redis, "")).with(lockout));
    let said = move_state(&local, &shared);
    assert!(said.contains("1 token state(s), 1 lockout(s)"), "{said}");
    assert!(shared.auth("mia", &hotp(2)).is_reject(), "a code used before the move");
    assert!(shared.auth("noah", &hotp(0)).is_reject(), "a lock from before the move");
    assert!(shared.auth("mia", &hotp(3)).is_accept());
}

/// A `--state` that names no journal (a typo, a default) is refused: it must not pass for
/// a finished move, and leaves no empty journal behind.
#[test]
fn mfa_admin_refuses_to_move_a_journal_that_is_not_there() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let tokens = hotp_tokens(&["mia"]);
    let shared = Server::start(&module, &Setup::otp_mode(&tokens).with(&store_lines(&redis, "")));
    let missing = shared.dir.join("no-such-dir/state.jsonl");
    let out = move_journal(&shared.tokens_path(), &missing, &shared);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no state journal at") && stderr.contains("no-such-dir/state.jsonl"), "{stderr}");
    assert!(!missing.parent().unwrap().exists(), "nothing created");
}

/// `tls = yes` with `ca_file` (or `ca_path`): the module talks TLS to Redis and checks its
/// certificate against the CA given; without that CA (the system's store) the
/// certificate is refused and logins are refused as unavailable.
#[test]
fn redis_over_tls_checked_against_ca_file() {
    let (module, bin) = require_redis!();
    let dir = std::env::temp_dir().join(format!("rlm-mfa-redis-tls-{}", std::process::id()));
    let ca = common::tls_front::TestCa::create(&dir);
    let tls_port = common::redis::free_tcp_port();
    let redis = RedisServer::start_with(
        &bin,
        &format!(
            "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients no\n",
            ca.server_cert.display(),
            ca.server_key.display(),
            ca.ca_file.display()
        ),
    );
    let tls = |extra: &str| {
        format!(
            "state_store = redis\nredis {{\n\tserver = 127.0.0.1:{tls_port}\n\tprefix = t\n\ttls = yes\n{extra}}}\n"
        )
    };
    let checked = Server::start(
        &module,
        &Setup::otp_mode(&hotp_tokens(&["olga"])).with(&tls(&format!("\tca_file = {}\n", ca.ca_file.display()))),
    );
    assert!(checked.auth("olga", &hotp(0)).is_accept());
    assert!(checked.auth("olga", &hotp(0)).is_reject());
    assert_eq!(redis.cli(&["HGET", "t:tokens:olga", "h:H-olga"]).trim(), "1", "the claim went over TLS");
    // ca_path: a directory holding the CA, as c_rehash leaves it (a hash-named link).
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::os::unix::fs::symlink(&ca.ca_file, certs.join("0a1b2c3d.0")).unwrap();
    let by_path = Server::start(
        &module,
        &Setup::otp_mode(&hotp_tokens(&["olga"])).with(&tls(&format!("\tca_path = {}\n", certs.display()))),
    );
    assert!(by_path.auth("olga", &hotp(1)).is_accept(), "checked against ca_path");
    assert!(by_path.auth("olga", &hotp(1)).is_reject());
    let unchecked = Server::start(&module, &Setup::otp_mode(&hotp_tokens(&["olga"])).with(&tls("")));
    let refused = unchecked.auth("olga", &hotp(2));
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
    drop(unchecked);
    // ca_file and ca_path together are trusted together: a ca_file of another CA
    // alone is refused, and with the directory that holds the right one, accepted.
    let other = common::tls_front::TestCa::create(&dir.join("other"));
    let other_file = format!("\tca_file = {}\n", other.ca_file.display());
    let wrong = Server::start(&module, &Setup::otp_mode(&hotp_tokens(&["olga"])).with(&tls(&other_file)));
    let refused = wrong.auth("olga", &hotp(2));
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "another CA alone: {refused:?}");
    drop(wrong);
    let both = format!("{other_file}\tca_path = {}\n", certs.display());
    let both = Server::start(&module, &Setup::otp_mode(&hotp_tokens(&["olga"])).with(&tls(&both)));
    assert!(both.auth("olga", &hotp(2)).is_accept(), "ca_path's CA trusted beside ca_file's");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tls = yes` with Sentinels: the Sentinel is asked over TLS and the primary it
/// names is reached over TLS, both checked against `ca_file`; without it (the
/// system's trust store, which does not hold the test CA) the login is refused.
#[test]
fn sentinels_and_primary_over_tls_checked_against_ca_file() {
    let (module, bin) = require_redis!();
    let dir = std::env::temp_dir().join(format!("rlm-mfa-sentinel-tls-{}", std::process::id()));
    let ca = common::tls_front::TestCa::create(&dir);
    let tls_lines = |port: u16| {
        format!(
            "tls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients no\n\
             tls-replication yes\n",
            ca.server_cert.display(),
            ca.server_key.display(),
            ca.ca_file.display()
        )
    };
    let (primary_tls, sentinel_tls) = (common::redis::free_tcp_port(), common::redis::free_tcp_port());
    let primary = RedisServer::start_with(&bin, &tls_lines(primary_tls));
    let _sentinel = RedisServer::sentinel_with(&bin, "mfa-primary", primary_tls, &tls_lines(sentinel_tls));
    let lines = |extra: &str| {
        format!(
            "state_store = redis\nredis {{\n\tserver = 127.0.0.1:{sentinel_tls}\n\tsentinel_service = mfa-primary\n\
             \tprefix = t\n\ttls = yes\n{extra}}}\n"
        )
    };
    let tokens = hotp_tokens(&["tia"]);
    let ca_file = format!("\tca_file = {}\n", ca.ca_file.display());
    let checked = Server::start(&module, &Setup::otp_mode(&tokens).with(&lines(&ca_file)));
    assert!(checked.auth("tia", &hotp(0)).is_accept());
    assert!(checked.auth("tia", &hotp(0)).is_reject());
    assert_eq!(primary.cli(&["HGET", "t:tokens:tia", "h:H-tia"]).trim(), "1", "the claim reached the primary");
    let unchecked = Server::start(&module, &Setup::otp_mode(&tokens).with(&lines("")));
    let refused = unchecked.auth("tia", &hotp(1));
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// TOTP tokens take the one-round-trip path (the lock check and the claim in
/// one script): 200 users' current codes, each sent to two servers at the same
/// instant, are each accepted once; a locked user's right code is refused on
/// every server, and a success clears the failures.
#[test]
fn totp_codes_in_one_round_trip_race_lock_and_reset_across_servers() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let users: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let seed = |i: usize| format!("totp-race-seed-{i:04}-abcdefg").into_bytes();
    let entries: Vec<String> = (0..users.len())
        .map(|i| {
            let secret = data_encoding::BASE32_NOPAD.encode(&seed(i));
            format!(r#""{}": {{"tokens": [{{"serial": "T", "type": "totp", "secret": "{secret}"}}]}}"#, users[i])
        })
        .collect();
    let tokens = format!(r#"{{"users": {{{}}}}}"#, entries.join(", "));
    let setup = Setup::otp_mode(&tokens)
        .with(&store_lines(&redis, ""))
        .with("lockout {\n\tmax_failures = 2\n\tduration = 300\n}");
    let servers = farm(&module, setup, 2);
    common::settle_in_step(8);
    let step = common::now() / 30;
    let code = |i: usize| hotp_code(&seed(i), step, 6, Algorithm::Sha1);
    let logins: Vec<(String, String)> = (0..users.len()).map(|i| (users[i].clone(), code(i))).collect();
    let answers = at_once(&servers, &logins);
    for (i, user) in users.iter().enumerate() {
        let accepted = answers.iter().filter(|a| a[i]).count();
        assert_eq!(accepted, 1, "{user}'s code: {accepted} Accepts from two servers");
    }
    // Each race's loser counted one failure (a replay); the winner's success had cleared none.
    // t0: one more failure locks (max_failures = 2); then the next step's right code is refused.
    assert!(servers[0].auth("t0", "000000").is_reject());
    let next = hotp_code(&seed(0), step + 1, 6, Algorithm::Sha1);
    let locked = servers[1].auth("t0", &next);
    assert!(locked.message().unwrap_or_default().contains("Too many failed attempts"), "{locked:?}");
    // t1: a success clears the failures (one replay failure from the race).
    let before: u32 = redis.cli(&["HGET", "t:lock:t1", "f"]).trim().parse().unwrap_or(0);
    assert!(before <= 1, "{before}");
    assert!(servers[0].auth("t1", &hotp_code(&seed(1), step + 1, 6, Algorithm::Sha1)).is_accept());
    assert_eq!(redis.cli(&["EXISTS", "t:lock:t1"]).trim(), "0", "a success clears the failures");
}

/// A wrong TOTP code costs one round trip as a right one does: one EVALSHA counts
/// the failure by compare-and-set from this server's copy of the count (no read
/// first); for a user that another server locked, the same script counts nothing.
#[test]
fn a_wrong_totp_code_is_counted_in_one_round_trip_and_not_while_locked() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let secret = data_encoding::BASE32_NOPAD.encode(b"one-trip-failure-seed");
    let tokens =
        format!(r#"{{"users": {{"w": {{"tokens": [{{"serial": "T", "type": "totp", "secret": "{secret}"}}]}}}}}}"#);
    let setup = Setup::otp_mode(&tokens)
        .with(&store_lines(&redis, ""))
        .with("lockout {\n\tmax_failures = 2\n\tduration = 300\n}");
    let servers = farm(&module, setup, 2);
    let calls = |command: &str| -> u64 {
        let stats = redis.cli(&["INFO", "commandstats"]);
        let line = stats.lines().find(|l| l.starts_with(&format!("cmdstat_{command}:")));
        line.and_then(|l| l.split("calls=").nth(1)?.split(',').next()?.parse().ok()).unwrap_or(0)
    };
    // The first server counts two failures, which lock; the second, which has not
    // seen the user, is refused a third in the same one script, and nothing is counted.
    for (i, (server, failures)) in [(&servers[0], "1"), (&servers[0], "2"), (&servers[1], "2")].into_iter().enumerate()
    {
        // HGETALL is the read's alone (the scripts' own commands count too, and they use HMGET).
        let (evalsha, reads) = (calls("evalsha"), calls("hgetall"));
        assert!(server.auth("w", "000000").is_reject(), "guess {i}");
        assert_eq!(calls("evalsha") - evalsha, 1, "guess {i}: one script");
        assert_eq!(calls("hgetall") - reads, 0, "guess {i}: no read first");
        assert_eq!(redis.cli(&["HGET", "t:lock:w", "f"]).trim(), failures, "guess {i}");
    }
    assert!(servers[1].debug_log().contains("\"w\" is locked for"), "the refusal is logged as locked");
}

/// A Redis that accepts connections and never answers (SIGSTOP: the kernel
/// still completes them): more concurrent logins than FreeRADIUS has threads
/// (32 in tests/radiusd.conf.in) are each refused as unavailable on radclient's
/// first try, with one log line each naming the timeout; no thread is left
/// waiting, and after SIGCONT the service is normal.
#[test]
fn with_redis_hung_every_login_is_refused_within_the_bound_and_service_resumes() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    const N: usize = 40;
    let users: Vec<String> = (0..N).map(|i| format!("h{i}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    // timeout_ms = 200: each login's wait on Redis is bounded by 3 x 200 ms (README).
    let setup = Setup::otp_mode(&hotp_tokens(&names)).with(&store_lines(&redis, "\ttimeout_ms = 200\n"));
    let server = Arc::new(Server::start(&module, &setup));
    // Pooled connections exist before the hang: that path is bounded as well as a new one.
    for user in &users[..4] {
        assert!(server.auth(user, &hotp(0)).is_accept());
    }
    let before = server.debug_log().len();
    redis.pause();
    let started = Instant::now();
    let workers: Vec<_> = users
        .iter()
        .map(|user| {
            let (server, user) = (server.clone(), user.clone());
            thread::spawn(move || server.auth(&user, &hotp(1)))
        })
        .collect();
    let replies: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let took = started.elapsed();
    for (user, reply) in users.iter().zip(&replies) {
        assert!(reply.is_reject(), "{user}: {reply:?}");
        assert_eq!(reply.message().unwrap_or_default(), UNAVAILABLE, "{user}: {reply:?}");
    }
    // radclient waits 15 s before its second try: all were answered on the first
    // (a generous margin over 40 x 600 ms spread over 32 threads).
    assert!(took < Duration::from_secs(14), "the logins took {took:?}");
    let log = server.debug_log()[before..].to_string();
    let causes = log.lines().filter(|l| l.contains("no answer within timeout_ms")).count();
    assert_eq!(causes, N, "one line per login naming the cause:\n{}", common::tail(&log, 40));
    redis.resume();
    for user in &users {
        let reply = server.auth(user, &hotp(1));
        assert!(reply.is_accept(), "{user} after SIGCONT: {reply:?}");
    }
}

/// With `stats { file }`, each operation on Redis is timed (`call="redis"`) and
/// one that fails counts as a store failure: Redis hung, a login's first
/// operation fails and ends it, one failure.
#[test]
fn redis_operations_are_timed_and_their_failures_counted() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let stats = "stats {\n file = ${confdir}/mfa.prom\n interval = 1\n}\n";
    let setup = Setup::otp_mode(&hotp_tokens(&["una"])).with(&store_lines(&redis, "\ttimeout_ms = 200\n")).with(stats);
    let server = Server::start(&module, &setup);
    let file = server.dir.join("mfa.prom");
    assert!(server.auth("una", &hotp(0)).is_accept());
    let count = r#"rlm_mfa_call_duration_seconds_count{module="mfa",call="redis"}"#;
    let failures = r#"rlm_mfa_failures_total{module="mfa",kind="store"}"#;
    let operations = common::prom::wait_until(&file, count, |n| n >= 1.0);
    assert!(operations >= Some(1.0), "the login's operations timed: {operations:?}");
    assert_eq!(common::prom::sample(&file, failures), Some(0.0));
    redis.pause();
    let refused = server.auth("una", &hotp(1));
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
    assert_eq!(common::prom::wait_for(&file, failures, 1.0), Some(1.0), "one failed operation ended the login");
    redis.resume();
}

/// `wait_replicas = 1` with no replica attached: WAIT answers 0, so the login
/// is refused as unavailable, and the claim it made stands (the code is spent,
/// also for a server that does not wait): the guarantee is WAIT's, not timing.
#[test]
fn wait_replicas_without_a_replica_refuses_the_login_and_spends_the_code() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let tokens = hotp_tokens(&["pat"]);
    let waiting = Server::start(&module, &Setup::otp_mode(&tokens).with(&store_lines(&redis, "\twait_replicas = 1\n")));
    let refused = waiting.auth("pat", &hotp(0));
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
    assert!(waiting.debug_log().contains("reached 0 of the 1 replicas"), "{}", common::tail(&waiting.debug_log(), 30));
    assert!(waiting.auth("pat", &hotp(0)).is_reject(), "the same code again");
    let plain = Server::start(&module, &Setup::otp_mode(&tokens).with(&store_lines(&redis, "")));
    let replayed = plain.auth("pat", &hotp(0));
    assert!(replayed.is_reject() && replayed.message() != Some(UNAVAILABLE), "the code was spent: {replayed:?}");
    assert!(plain.auth("pat", &hotp(1)).is_accept());
}

/// Moving a journal again after the servers have used Redis undoes nothing
/// they recorded: a lockout reached in Redis since the first move stays, and
/// no code used in Redis becomes good again.
#[test]
fn moving_a_journal_again_after_use_in_redis_undoes_nothing() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let tokens = hotp_tokens(&["pia", "quin"]);
    let lockout = "lockout {\n\tmax_failures = 3\n\tduration = 300\n}";
    let local = Server::start(&module, &Setup::otp_mode(&tokens).with(lockout));
    assert!(local.auth("pia", "000000").is_reject());
    assert!(local.auth("quin", &hotp(0)).is_accept());
    let shared = Server::start(&module, &Setup::otp_mode(&tokens).with(&store_lines(&redis, "")).with(lockout));
    move_state(&local, &shared);
    // In Redis: two more failures lock pia (3); quin uses codes 1 and 2.
    assert!(shared.auth("pia", "000000").is_reject());
    let locked = shared.auth("pia", "000000");
    assert!(locked.message().unwrap_or_default().contains("Too many failed attempts"), "{locked:?}");
    assert!(shared.auth("quin", &hotp(1)).is_accept());
    assert!(shared.auth("quin", &hotp(2)).is_accept());
    move_state(&local, &shared);
    assert_eq!(redis.cli(&["HGET", "t:lock:pia", "f"]).trim(), "3", "the count reached in Redis stays");
    let still = shared.auth("pia", &hotp(0));
    assert!(still.message().unwrap_or_default().contains("Too many failed attempts"), "{still:?}");
    assert!(shared.auth("quin", &hotp(2)).is_reject(), "a code used in Redis");
    assert!(shared.auth("quin", &hotp(3)).is_accept());
}

/// One user holds at most 1,000 answered States not yet expired in Redis, as
/// in the journal: past that their answers are refused as unavailable (a flood),
/// others' are not, and expired ones make room again.
#[test]
fn answered_states_are_bounded_per_user_in_redis() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let setup =
        Setup::challenge_mode("password-then-otp", &hotp_tokens(&["zoe", "yan"]), &[("zoe", "pw"), ("yan", "pw")])
            .file("mods-config/mfa/state.key", KEY)
            .with(&store_lines(&redis, ""));
    let server = Server::start(&module, &setup);
    let fill = |score: u64| {
        let mut args = vec!["ZADD".to_string(), "t:answered:zoe".to_string()];
        for i in 0..1000 {
            args.push(score.to_string());
            args.push(format!("{i:032x}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        redis.cli(&args);
    };
    fill(common::now() + 3600);
    let challenge = server.auth("zoe", "pw");
    assert!(challenge.is_challenge(), "{challenge:?}");
    let refused = server.answer("zoe", &hotp(0), challenge.state());
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
    assert!(server.debug_log().contains("already holds 1000 answered"), "{}", common::tail(&server.debug_log(), 30));
    // Another user is not held back; their State is counted, and the count expires.
    let other = server.auth("yan", "pw");
    assert!(server.answer("yan", &hotp(0), other.state()).is_accept());
    assert_eq!(redis.cli(&["ZCARD", "t:answered:yan"]).trim(), "1");
    let ttl: i64 = redis.cli(&["TTL", "t:answered:yan"]).trim().parse().unwrap();
    assert!(ttl > 0, "{ttl}");
    // zoe's States expired: room again.
    redis.cli(&["DEL", "t:answered:zoe"]);
    fill(common::now().saturating_sub(1));
    let again = server.auth("zoe", "pw");
    let accepted = server.answer("zoe", &hotp(1), again.state());
    assert!(accepted.is_accept(), "{accepted:?}");
    assert_eq!(redis.cli(&["ZCARD", "t:answered:zoe"]).trim(), "1", "the expired ones were dropped");
}

/// `mfa-admin resync` against the Redis store: the counter found from two
/// consecutive codes holds for every server.
#[test]
fn mfa_admin_resyncs_a_token_in_the_redis_store() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let servers = farm(&module, Setup::otp_mode(&hotp_tokens(&["ruth"])).with(&store_lines(&redis, "")), 2);
    let (_, said) = admin_ok(&servers[0], &["resync", "ruth", &hotp(200), &hotp(201)]);
    assert!(said.contains("state in the Redis store 127.0.0.1:"), "{said}");
    assert_eq!(redis.cli(&["HGET", "t:tokens:ruth", "h:H-ruth"]).trim(), "202");
    assert!(servers[1].auth("ruth", &hotp(201)).is_reject(), "a code before the resync point");
    assert!(servers[1].auth("ruth", &hotp(202)).is_accept());
    assert!(servers[0].auth("ruth", &hotp(202)).is_reject());
}

/// `sentinel_password`: Sentinels that ask for a password are asked with it
/// (and it is never logged); without it, logins are refused as unavailable.
#[test]
fn sentinels_with_a_password() {
    let (module, bin) = require_redis!();
    let primary = RedisServer::start(&bin);
    let sentinel = RedisServer::sentinel_with(&bin, "mfa-primary", primary.port, "requirepass sentinel-s3cret\n");
    let lines = |extra: &str| {
        format!(
            "state_store = redis\nredis {{\n\tserver = {}\n\tsentinel_service = mfa-primary\n\tprefix = t\n{extra}}}\n",
            sentinel.address()
        )
    };
    let tokens = hotp_tokens(&["sam"]);
    let with =
        Server::start(&module, &Setup::otp_mode(&tokens).with(&lines("\tsentinel_password = \"sentinel-s3cret\"\n")));
    assert!(with.auth("sam", &hotp(0)).is_accept());
    assert!(with.auth("sam", &hotp(0)).is_reject());
    assert!(!with.debug_log().contains("sentinel-s3cret"), "the password is never logged");
    let without = Server::start(&module, &Setup::otp_mode(&tokens).with(&lines("")));
    let refused = without.auth("sam", &hotp(1));
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
}

/// Sentinels that accept connections and never answer (SIGSTOP), more of them
/// than fit in one operation's deadline: the module stops asking when the
/// deadline (3 x timeout_ms) has passed, says so in the log, and refuses the
/// login as unavailable; once they answer again, logins are served.
#[test]
fn hung_sentinels_cost_a_login_one_deadline_not_one_timeout_each() {
    let (module, bin) = require_redis!();
    let primary = RedisServer::start(&bin);
    let sentinels: Vec<RedisServer> =
        (0..4).map(|_| RedisServer::sentinel(&bin, "mfa-primary", primary.port)).collect();
    let list: Vec<String> = sentinels.iter().map(RedisServer::address).collect();
    let lines = format!(
        "state_store = redis\nredis {{\n\tserver = \"{}\"\n\tsentinel_service = mfa-primary\n\tprefix = t\n\
         \ttimeout_ms = 200\n}}\n",
        list.join(", ")
    );
    let server = Server::start(&module, &Setup::otp_mode(&hotp_tokens(&["ted"])).with(&lines));
    for sentinel in &sentinels {
        sentinel.pause();
    }
    let refused = server.auth("ted", &hotp(0));
    assert_eq!(refused.message().unwrap_or_default(), UNAVAILABLE, "{refused:?}");
    let log = server.debug_log();
    // Three Sentinels took the whole deadline: the fourth was not waited for.
    let cause = format!("Sentinel {}: no answer within timeout_ms (the deadline has passed", list[3]);
    assert!(log.contains(&cause), "{}", common::tail(&log, 30));
    for sentinel in &sentinels {
        sentinel.resume();
    }
    assert!(server.auth("ted", &hotp(0)).is_accept());
}

/// `limits.codes_sent` counted across the farm: two codes sent by SMS through
/// two servers use up a limit of two; the third, on either, is refused and
/// never reaches the gateway.
#[test]
fn the_sent_code_limit_holds_across_the_farm() {
    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let gateway = FakeGateway::start(Behaviour::Accept);
    let body = r#"'{"to": "{destination}", "text": "{message}"}'"#;
    let setup = Setup::challenge_mode(
        "password-then-otp",
        r#"{"users": {"una": {"sms": "+4512345612"}}}"#,
        &[("una", "pw-una")],
    )
    .file("mods-config/mfa/state.key", KEY)
    .with(&store_lines(&redis, ""))
    .with("limits {\n\tcodes_sent = 2\n\twindow = 600\n}")
    .with(&format!("sms {{\n url = \"{}\"\n body = {body}\n timeout = 2\n}}", gateway.url()));
    let servers = farm(&module, setup, 2);
    for server in &servers {
        let sent = server.auth("una", "pw-una");
        assert!(sent.is_challenge(), "{sent:?}");
    }
    let third = servers[0].auth("una", "pw-una");
    assert!(third.is_reject(), "{third:?}");
    assert!(third.message().unwrap_or_default().starts_with("Too many "), "{third:?}");
    assert_eq!(gateway.requests().len(), 2, "no third code reached the gateway");
    assert_eq!(redis.cli(&["GET", "t:count:code:una"]).trim(), "3");
    let ttl: i64 = redis.cli(&["TTL", "t:count:code:una"]).trim().parse().unwrap();
    assert!((1..=600).contains(&ttl), "the count expires with limits.window: {ttl}");
}

/// The store's claim of a login (how re-sends join across servers), against
/// the real Redis through two connections as two servers hold them: the first
/// claims, the other sees what the first published (bytes as they are), under
/// the prefix, expiring.
#[test]
fn a_login_is_claimed_once_and_what_the_first_published_is_read_by_the_other() {
    use mfa_core::config::redis::{redis_settings, RawRedis};
    use mfa_core::store::redis::RedisStore;
    use mfa_core::store::state_store::StateStore;
    let (_module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let raw = RawRedis { server: Some(redis.address()), prefix: Some("t".into()), ..RawRedis::default() };
    let open = || RedisStore::open(redis_settings(&raw).unwrap()).unwrap();
    let (first, other) = (open(), open());
    assert_eq!(first.claim_login("L1", 30), Ok(None), "the first claims");
    assert_eq!(other.claim_login("L1", 30), Ok(Some(vec![])), "claimed, nothing published yet");
    assert_eq!(first.claim_login("L1", 30), Ok(Some(vec![])), "once, even for the one that claimed");
    let sealed = b"\x00sealed\xff\r\n".to_vec();
    first.publish_login("L1", &sealed, 5).unwrap();
    assert_eq!(other.claim_login("L1", 30), Ok(Some(sealed.clone())));
    assert_eq!(other.read_login("L1"), Ok(Some(sealed)));
    assert_eq!(other.read_login("L2"), Ok(None), "never claimed");
    let ttl: i64 = redis.cli(&["TTL", "t:login:L1"]).trim().parse().unwrap();
    assert!((1..=5).contains(&ttl), "published with its own lifetime: {ttl}");
    redis.cli(&["DEL", "t:login:L1"]);
    assert_eq!(other.claim_login("L1", 30), Ok(None), "gone: the next login is a first again");
}

/// A request's waits on the store add up to at most 3 x `timeout_ms` (README,
/// "What happens when Redis fails"), however many operations it makes. A NAS's
/// re-send of a privacyIDEA push login, on a server whose Redis answers every
/// exchange late but well within `timeout_ms`, reads the store again and again for
/// the login it joined: once that budget is spent it stops and is refused as
/// unavailable, while the login it joined still waits for the push. Without
/// the budget it would have waited for that push, each read in time.
#[test]
fn a_request_stops_waiting_on_a_slow_redis_when_its_budget_is_spent() {
    use common::fake_privacyidea::{FakePrivacyIdea, GOOD_PASS};
    use common::slow_relay::SlowRelay;

    let (module, bin) = require_redis!();
    let redis = RedisServer::start(&bin);
    let relay = SlowRelay::start(redis.port, Duration::ZERO);
    let pi = FakePrivacyIdea::start();
    let site = std::fs::read_to_string(common::repo().join("freeradius-conf/sites-available/mfa-privacyidea")).unwrap();
    let setup = |address: &str| {
        let mut setup = Setup::otp_mode(r#"{"users": {}}"#).file("mods-config/mfa/state.key", KEY).with(&format!(
            "backend = privacyidea\nprivacyidea {{\n\turl = \"{}\"\n\ttimeout = 2\n\tpoll_wait = 6\n}}\n\
             state_store = redis\nredis {{\n\tserver = {address}\n\tprefix = t\n\ttimeout_ms = 500\n}}\n",
            pi.url()
        ));
        setup.site = Some(site.clone());
        setup
    };
    // A reaches Redis directly; B through the relay, which answers at once for now.
    let a = Server::start(&module, &setup(&redis.address()));
    let b = Server::start(&module, &setup(&relay.address()));
    assert!(b.auth("alice", GOOD_PASS).is_accept(), "B works through the relay");
    // From now on each of B's exchanges takes 60 ms, far within timeout_ms (500): no
    // one of them times out; only their sum, past 3 x 500 ms, ends the re-send.
    relay.set_delay(Duration::from_millis(60));

    let packet = "User-Name = \"pushuser\", User-Password = \"pin\", Calling-Station-Id = \"10.0.0.7\"\n";
    let (first, resent) = thread::scope(|s| {
        let first = s.spawn(|| a.send(packet));
        let started = Instant::now();
        while !pi.requests().iter().any(|r| r.path == "/validate/check" && r.body.contains("pushuser")) {
            assert!(started.elapsed() < Duration::from_secs(10), "A sent no push");
            thread::sleep(Duration::from_millis(20));
        }
        let resent = b.send(packet);
        // Only now is the push approved: B did not wait for it.
        assert!(pi.answer_push("pushuser", true), "the push still waits for the user");
        (first.join().unwrap(), resent)
    });
    assert!(first.is_accept(), "{first:?}");
    assert!(resent.is_reject(), "{resent:?}");
    assert_eq!(resent.message().unwrap_or_default(), UNAVAILABLE, "{resent:?}");
    let log = b.debug_log();
    assert!(log.contains("is being decided on another server: joining it"), "{}", common::tail(&log, 30));
    let cause = log.lines().find(|l| l.contains("refused \"pushuser\": the login it joined on another server"));
    // The budget ends it at the start of an operation ("spent"), or cuts the wait of
    // the one under way (an exchange's own timeout_ms is eight times what it takes).
    assert!(
        cause.is_some_and(
            |l| l.contains("the request's time on the store is spent") || l.contains("no answer within timeout_ms")
        ),
        "{}",
        common::tail(&log, 30)
    );
}

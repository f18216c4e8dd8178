//! kill -9 of FreeRADIUS in a loop while HOTP and TOTP logins go on in parallel.
//! After every restart: the server starts on the state journal it left, no HOTP
//! counter and no TOTP step has gone backwards (mfa-admin list), and every code
//! accepted before the kill is refused when replayed.
//!
//! Rounds: `RLM_MFA_CRASH_ROUNDS` (default 12); scripts/crash-loop.sh runs more.

mod common;

use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::{now, Server, Setup, SEED_B32};
use mfa_core::factor::otp::{hotp_code, Algorithm};

const SEED: &[u8] = b"12345678901234567890";
const HOTP_USERS: usize = 4;
const TOTP_WORKERS: usize = 4;
/// TOTP users each worker may use in one round (each logs in once).
const TOTP_PER_WORKER: usize = 8;

fn rounds() -> usize {
    std::env::var("RLM_MFA_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}

fn hotp_user(i: usize) -> String {
    format!("h{i}")
}

fn totp_user(round: usize, worker: usize, n: usize) -> String {
    format!("t{round}-{worker}-{n}")
}

fn token_file(rounds: usize) -> String {
    let mut users: Vec<String> = (0..HOTP_USERS)
        .map(|i| {
            let u = hotp_user(i);
            format!(r#""{u}": {{"tokens": [{{"serial": "S-{u}", "type": "hotp", "secret": "{SEED_B32}"}}]}}"#)
        })
        .collect();
    for r in 0..rounds {
        for w in 0..TOTP_WORKERS {
            for n in 0..TOTP_PER_WORKER {
                let u = totp_user(r, w, n);
                users.push(format!(
                    r#""{u}": {{"tokens": [{{"serial": "S-{u}", "type": "totp", "secret": "{SEED_B32}"}}]}}"#
                ));
            }
        }
    }
    format!(r#"{{"users": {{{}}}}}"#, users.join(",\n"))
}

/// The pid of the freeradius process serving this server's directory, from /proc.
fn server_pid(server: &Server) -> String {
    let dir = server.dir.display().to_string();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.first().is_some_and(|a| a.ends_with("freeradius")) && args.contains(&dir) {
            return name;
        }
    }
    panic!("no freeradius process serves {dir}");
}

/// What a login got: accepted, refused, or no answer (the server died under it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Got {
    Accept,
    Reject,
    Lost,
}

/// One login; `Lost` only when it was sent before the kill was (`killing` still
/// false): a login sent to the dead server is not one that was in flight.
fn login(server: &Server, user: &str, code: &str, killing: &AtomicBool) -> Option<Got> {
    let before_kill = !killing.load(Ordering::SeqCst);
    let reply =
        server.send_with(&["-r", "1", "-t", "2"], &format!("User-Name = \"{user}\", User-Password = \"{code}\"\n"));
    match reply.code.as_str() {
        "Access-Accept" => Some(Got::Accept),
        "Access-Reject" => Some(Got::Reject),
        _ if before_kill => Some(Got::Lost),
        _ => None,
    }
}

/// "next counter N" of HOTP tokens, "last step N" of TOTP tokens, by serial.
fn progress(server: &Server) -> HashMap<String, u64> {
    let out = server.admin(&["list"]);
    assert!(out.status.success(), "mfa-admin list failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut map = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let serial = line.split_whitespace().next().unwrap_or("");
        for label in ["next counter ", "last step "] {
            if let Some(at) = line.find(label) {
                let value = line[at + label.len()..].split_whitespace().next().unwrap().parse().unwrap();
                map.insert(serial.to_string(), value);
            }
        }
    }
    map
}

/// Accepted codes: (user, code, HOTP counter or TOTP step).
type Accepted = Vec<(String, String, u64)>;

#[test]
fn kill_9_in_a_loop_loses_no_accepted_code() {
    let module = require_module!();
    let rounds = rounds();
    let setup = Setup::otp_mode(&token_file(rounds)).with("lockout {\n max_failures = 0\n}");
    let mut server = Server::start(&module, &setup);
    let mut next_counter = [0u64; HOTP_USERS];
    let mut every_accepted: Accepted = Vec::new();
    let mut last_progress: HashMap<String, u64> = HashMap::new();
    let mut lost_at_kill = 0;

    for round in 0..rounds {
        // Set as the kill is sent: the workers stop, and know which logins it caught.
        let stop = AtomicBool::new(false);
        let accepted = Mutex::new(Accepted::new());
        let refused = Mutex::new(Vec::new());
        let lost = Mutex::new(0);
        let server_ref = &server;
        std::thread::scope(|s| {
            for (i, counter) in next_counter.iter_mut().enumerate() {
                let (stop, accepted, refused, lost) = (&stop, &accepted, &refused, &lost);
                s.spawn(move || {
                    let user = hotp_user(i);
                    while !stop.load(Ordering::SeqCst) {
                        let code = hotp_code(SEED, *counter, 6, Algorithm::Sha1);
                        let got = login(server_ref, &user, &code, stop);
                        // A lost login may have been accepted: its code counts as used.
                        *counter += 1;
                        match got {
                            Some(Got::Accept) => accepted.lock().unwrap().push((user.clone(), code, *counter - 1)),
                            Some(Got::Reject) => refused.lock().unwrap().push((user.clone(), code)),
                            Some(Got::Lost) => {
                                *lost.lock().unwrap() += 1;
                                break;
                            }
                            None => break,
                        }
                    }
                });
            }
            for w in 0..TOTP_WORKERS {
                let (stop, accepted, refused, lost) = (&stop, &accepted, &refused, &lost);
                s.spawn(move || {
                    for n in 0..TOTP_PER_WORKER {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let user = totp_user(round, w, n);
                        let step = now() / 30;
                        let code = hotp_code(SEED, step, 6, Algorithm::Sha1);
                        match login(server_ref, &user, &code, stop) {
                            Some(Got::Accept) => accepted.lock().unwrap().push((user, code, step)),
                            Some(Got::Reject) => refused.lock().unwrap().push((user, code)),
                            Some(Got::Lost) => {
                                *lost.lock().unwrap() += 1;
                                break;
                            }
                            None => break,
                        }
                    }
                });
            }
            // Some logins get through first; then the kill lands at a different moment
            // of the logins each round.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while accepted.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(50 + (round as u64 * 137) % 400));
            let pid = server_pid(server_ref);
            // Set first: a login that saw it false was sent before the kill.
            stop.store(true, Ordering::SeqCst);
            let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
            assert!(killed.success(), "kill -9 {pid} failed");
        });
        let accepted = accepted.into_inner().unwrap();
        let refused = refused.into_inner().unwrap();
        assert!(refused.is_empty(), "round {round}: fresh codes refused: {refused:?}");
        assert!(!accepted.is_empty(), "round {round}: no login got through before the kill");
        let lost = lost.into_inner().unwrap();
        lost_at_kill += lost;
        eprintln!("round {round}: {} accepted, {lost} in flight at the kill", accepted.len());

        // Starts again on the journal the killed server left (the start fails otherwise).
        server.restart();
        let now_progress = progress(&server);
        for (serial, value) in &last_progress {
            assert!(
                now_progress[serial] >= *value,
                "round {round}: {serial} went back from {value} to {}",
                now_progress[serial]
            );
        }
        for (user, _, value) in &accepted {
            let serial = format!("S-{user}");
            let floor = if user.starts_with('h') { value + 1 } else { *value };
            assert!(
                now_progress[&serial] >= floor,
                "round {round}: {serial} is at {}, behind accepted {value}",
                now_progress[&serial]
            );
        }
        last_progress = now_progress;

        replay_refused(&server, &accepted, &format!("round {round}"));
        every_accepted.extend(accepted);
    }
    replay_refused(&server, &every_accepted, "all rounds");
    let hotp = every_accepted.iter().filter(|(u, _, _)| u.starts_with('h')).count();
    eprintln!(
        "crash loop: {rounds} rounds of kill -9, {hotp} HOTP and {} TOTP logins accepted, \
         {lost_at_kill} in flight at a kill, every accepted code refused on replay, no counter back",
        every_accepted.len() - hotp
    );
}

/// Every code of `accepted`, sent again, is refused.
fn replay_refused(server: &Server, accepted: &Accepted, when: &str) {
    let packets: Vec<String> = accepted
        .iter()
        .map(|(user, code, _)| {
            format!("User-Name = \"{user}\", User-Password = \"{code}\"\nResponse-Packet-Type = Access-Reject\n")
        })
        .collect();
    let n = packets.len() as u64;
    assert_eq!(
        server.send_many(&packets, 16),
        (0, n, 0),
        "{when}: a code accepted before a kill -9 was accepted again"
    );
}

//! Online guessing, CI-sized (scripts/guess.sh is the long run): hundreds of
//! wrong codes in parallel at one user and at many, through otp, password+otp
//! and password-then-otp. Nothing is accepted, exactly `max_failures` guesses
//! per user reach the verifier before the lock (counted in the module's log
//! lines and in the state journal), and a locked user's right code is refused.

mod common;
#[path = "common/raw_radius.rs"]
mod raw_radius;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::{now, Server, Setup};
use mfa_core::factor::otp::{hotp_code, Algorithm};
use raw_radius::{Client, Reply, Request};

const MAX_FAILURES: usize = 5;
const LOCKED: &str = "Too many failed attempts";

struct User {
    name: String,
    password: String,
    seed: Vec<u8>,
}

fn users(n: usize) -> Vec<User> {
    (0..n)
        .map(|i| User {
            name: format!("g{i}"),
            password: format!("pw-g{i}"),
            seed: format!("guess-seed-{i:04}-abcdefgh").into_bytes(),
        })
        .collect()
}

fn tokens(users: &[User]) -> String {
    let entries: Vec<String> = users
        .iter()
        .map(|u| {
            let secret = data_encoding::BASE32_NOPAD.encode(&u.seed);
            format!(r#""{}": {{"tokens": [{{"serial": "T-{0}", "type": "totp", "secret": "{secret}"}}]}}"#, u.name)
        })
        .collect();
    format!(r#"{{"users": {{{}}}}}"#, entries.join(", "))
}

fn code_at(user: &User, step: u64) -> String {
    hotp_code(&user.seed, step, 6, Algorithm::Sha1)
}

/// A code no step within three of now accepts: wrong whatever the window (1 here).
fn wrong_code(user: &User, n: usize) -> String {
    let step = now() / 30;
    let taken: Vec<String> = (step - 3..=step + 3).map(|s| code_at(user, s)).collect();
    (n..).map(|k| format!("{:06}", (k * 7919 + 13) % 1_000_000)).find(|c| !taken.contains(c)).unwrap()
}

fn setup(mode: &str, users: &[User], max_failures: usize) -> Setup {
    let passwords: Vec<(&str, &str)> = users.iter().map(|u| (u.name.as_str(), u.password.as_str())).collect();
    let lockout = format!("lockout {{\n max_failures = {max_failures}\n duration = 600\n}}");
    match mode {
        "otp" => Setup::otp_mode(&tokens(users)).with(&lockout),
        "password+otp" => Setup::password_otp_mode(&tokens(users), &passwords).with(&lockout),
        _ => Setup::challenge_mode(mode, &tokens(users), &passwords).with(&format!("{lockout}\nmax_rounds = 3")),
    }
}

#[derive(Default)]
struct Tally {
    accepted: AtomicUsize,
    wrong: AtomicUsize,
    locked: AtomicUsize,
    answers: AtomicUsize,
}

impl Tally {
    fn add(&self, reply: Option<Reply>) {
        let reply = reply.expect("the server answers every guess");
        self.answers.fetch_add(1, Ordering::SeqCst);
        let text = reply.messages().join(" ");
        if reply.is_accept() {
            self.accepted.fetch_add(1, Ordering::SeqCst);
        } else if text.starts_with(LOCKED) {
            self.locked.fetch_add(1, Ordering::SeqCst);
        } else if text.contains("Wrong") {
            self.wrong.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// One wrong guess through `mode` (a whole dialogue in password-then-otp).
fn guess(client: &mut Client, mode: &str, user: &User, n: usize, tally: &Tally) {
    let name = user.name.as_str();
    match mode {
        "otp" => tally.add(client.send(&Request::new().user(name).password(wrong_code(user, n).as_bytes()))),
        "password+otp" => {
            let field = format!("{},{}", user.password, wrong_code(user, n));
            tally.add(client.send(&Request::new().user(name).password(field.as_bytes())));
        }
        _ => {
            let mut reply = client.send(&Request::new().user(name).password(user.password.as_bytes()));
            let mut round = 0;
            while let Some(state) =
                reply.as_ref().filter(|r| r.is_challenge()).and_then(|r| r.state()).map(<[u8]>::to_vec)
            {
                if round > 0 {
                    tally.add(reply.clone());
                }
                round += 1;
                let code = wrong_code(user, n + round);
                reply = client.send(&Request::new().user(name).password(code.as_bytes()).state(&state));
            }
            tally.add(reply);
        }
    }
}

/// `per_user` wrong guesses at each user, from 16 threads at once.
fn attack(server: &Server, mode: &str, users: &[User], per_user: usize) -> Tally {
    let jobs: Vec<(usize, usize)> = (0..per_user).flat_map(|n| (0..users.len()).map(move |u| (u, n))).collect();
    let jobs = Mutex::new(jobs.into_iter());
    let tally = Tally::default();
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                let mut client = Client::new(server.port, common::SECRET, Duration::from_secs(10));
                loop {
                    let next = jobs.lock().unwrap().next();
                    let Some((u, n)) = next else { break };
                    guess(&mut client, mode, &users[u], n, &tally);
                }
            });
        }
    });
    tally
}

/// Wrong codes the module checked for `user`: one log line each.
fn checked(server: &Server, user: &str) -> usize {
    server.debug_log().matches(&format!("rejected: \"{user}\" sent a wrong code")).count()
}

/// The failure count of the user's last lock record in the state journal.
fn journal_failures(server: &Server, user: &str) -> u64 {
    let text = std::fs::read_to_string(server.state_path()).unwrap_or_default();
    let mut failures = 0;
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        if record["u"] == user {
            match record["k"].as_str() {
                Some("lock") => failures = record["f"].as_u64().unwrap(),
                Some("unlock") => failures = 0,
                _ => {}
            }
        }
    }
    failures
}

/// The right code now, through `mode` (`state`: a challenge opened before the lock).
fn right_code(server: &Server, mode: &str, user: &User, state: Option<&[u8]>) -> Reply {
    let mut client = Client::new(server.port, common::SECRET, Duration::from_secs(10));
    let code = code_at(user, now() / 30);
    let request = match mode {
        "otp" => Request::new().user(&user.name).password(code.as_bytes()),
        "password+otp" => Request::new().user(&user.name).password(format!("{},{code}", user.password).as_bytes()),
        _ => Request::new().user(&user.name).password(code.as_bytes()).state(state.expect("an open challenge")),
    };
    client.send(&request).expect("an answer")
}

fn guessing_locks_after_exactly_max_failures(mode: &str, n_users: usize, per_user: usize) {
    let module = require_module!();
    let users = users(n_users);
    let server = Server::start(&module, &setup(mode, &users, MAX_FAILURES));
    common::settle_in_step(10);
    // password-then-otp: challenges opened before the attack, answered with the right code after it.
    let open: Vec<Option<Vec<u8>>> = users
        .iter()
        .map(|u| {
            (mode == "password-then-otp").then(|| {
                let mut c = Client::new(server.port, common::SECRET, Duration::from_secs(10));
                let first = c.send(&Request::new().user(&u.name).password(u.password.as_bytes())).unwrap();
                assert!(first.is_challenge(), "{first:?}");
                first.state().unwrap().to_vec()
            })
        })
        .collect();

    let tally = attack(&server, mode, &users, per_user);
    assert_eq!(tally.accepted.load(Ordering::SeqCst), 0, "{mode}: a wrong code was accepted");
    assert!(tally.answers.load(Ordering::SeqCst) >= n_users * per_user);
    // The guess that locks is answered "locked" too: MAX_FAILURES - 1 "wrong" answers per user.
    assert_eq!(tally.wrong.load(Ordering::SeqCst), n_users * (MAX_FAILURES - 1), "{mode}");
    for (user, state) in users.iter().zip(&open) {
        assert_eq!(checked(&server, &user.name), MAX_FAILURES, "{mode}: codes checked for {}", user.name);
        assert_eq!(journal_failures(&server, &user.name), MAX_FAILURES as u64, "{mode}: {}", user.name);
        let reply = right_code(&server, mode, user, state.as_deref());
        assert!(reply.is_reject(), "{mode}: the right code of locked {} got {reply:?}", user.name);
        assert!(reply.message().unwrap_or_default().starts_with(LOCKED), "{mode}: {reply:?}");
    }
}

#[test]
fn otp_mode_one_user_hundreds_of_guesses() {
    guessing_locks_after_exactly_max_failures("otp", 1, 300);
}

#[test]
fn otp_mode_many_users() {
    guessing_locks_after_exactly_max_failures("otp", 30, 10);
}

#[test]
fn password_otp_mode_one_user_and_many() {
    guessing_locks_after_exactly_max_failures("password+otp", 1, 300);
    guessing_locks_after_exactly_max_failures("password+otp", 30, 10);
}

#[test]
fn password_then_otp_dialogues_one_user_and_many() {
    guessing_locks_after_exactly_max_failures("password-then-otp", 1, 100);
    guessing_locks_after_exactly_max_failures("password-then-otp", 20, 6);
}

#[test]
fn without_lockout_every_guess_is_checked_and_none_accepted() {
    let module = require_module!();
    let users = users(1);
    let server = Server::start(&module, &setup("otp", &users, 0));
    common::settle_in_step(10);
    let tally = attack(&server, "otp", &users, 300);
    assert_eq!(tally.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(tally.wrong.load(Ordering::SeqCst), 300);
    assert_eq!(checked(&server, "g0"), 300);
    // Nothing locked: the right code still gets in.
    let reply = right_code(&server, "otp", &users[0], None);
    assert!(reply.is_accept(), "{reply:?}");
}

#[test]
fn guesses_without_the_password_count_nothing() {
    let module = require_module!();
    let users = users(1);
    let server = Server::start(&module, &setup("password+otp", &users, MAX_FAILURES));
    let mut client = Client::new(server.port, common::SECRET, Duration::from_secs(10));
    for n in 0..50 {
        let field = format!("not-the-password,{}", wrong_code(&users[0], n));
        let reply = client.send(&Request::new().user("g0").password(field.as_bytes())).unwrap();
        assert!(reply.is_reject(), "{reply:?}");
    }
    assert_eq!(checked(&server, "g0"), 0, "the first factor refused them before the code was looked at");
    assert_eq!(journal_failures(&server, "g0"), 0);
    common::settle_in_step(5);
    let reply = right_code(&server, "password+otp", &users[0], None);
    assert!(reply.is_accept(), "{reply:?}");
}

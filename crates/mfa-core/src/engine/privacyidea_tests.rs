//! The privacyIDEA backend's decisions against a scripted privacyIDEA: what is
//! sent, how each answer ends, and that a State is never forwarded unsealed.

use std::sync::Mutex;

use super::*;
use crate::backend::mapping::RawRule;
use crate::backend::privacyidea::{AnswerError, CallError, Called, CheckAnswer, PollStatus, Validate};
use crate::clock::FixedClock;
use crate::testutil::TempDir;

use super::test_config::{raw_config, T};

/// Every call's fields, in order.
type Sent = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Answers in the order given and records every call.
#[derive(Default)]
struct Scripted {
    checks: Mutex<Vec<Result<CheckAnswer, CallError>>>,
    polls: Mutex<Vec<Result<PollStatus, CallError>>>,
    sent: Sent,
}

impl Validate for Scripted {
    fn check(&self, form: &[(&str, &str)]) -> Called<CheckAnswer> {
        self.sent.lock().unwrap().push(form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        self.checks.lock().unwrap().remove(0).into()
    }
    fn poll(&self, transaction_id: &str) -> Called<PollStatus> {
        self.sent.lock().unwrap().push(vec![("poll".into(), transaction_id.into())]);
        self.polls.lock().unwrap().remove(0).into()
    }
}

fn answer(json: &str) -> Result<CheckAnswer, CallError> {
    crate::backend::privacyidea::answer::parse_check(json.as_bytes()).map_err(CallError::Answer)
}

const ACCEPT: &str = r#"{"result":{"status":true,"value":true,"authentication":"ACCEPT"},
    "detail":{"serial":"HOTP1","user":{"groups":["vpn-admins","staff"]}}}"#;
const REJECT: &str =
    r#"{"result":{"status":true,"value":false,"authentication":"REJECT"},"detail":{"message":"wrong otp pin"}}"#;
const CHALLENGE: &str = r#"{"result":{"status":true,"value":false,"authentication":"CHALLENGE"},
    "detail":{"transaction_id":"11112222333344445555","message":"please enter otp: ",
    "multi_challenge":[{"transaction_id":"11112222333344445555","type":"email","client_mode":"interactive"}]}}"#;
const PUSH: &str = r#"{"result":{"status":true,"value":false,"authentication":"CHALLENGE"},
    "detail":{"transaction_id":"99998888777766665555","message":"please confirm on your phone",
    "multi_challenge":[{"transaction_id":"99998888777766665555","type":"push","client_mode":"poll"}]}}"#;

/// The backend set to privacyidea at an address nothing answers (the calls are scripted).
fn pi_raw_config(dir: &TempDir) -> crate::config::RawConfig {
    let mut raw = raw_config(dir.path(), "otp");
    raw.backend = Some("privacyidea".into());
    raw.privacyidea = crate::config::RawPrivacyIdea {
        url: Some("http://127.0.0.1:1".into()),
        timeout: 2,
        poll_wait: 5,
        poll_interval: 1,
        max_waiting: 2,
        send_client: true,
        realms: vec![("example.com".into(), "corp".into())],
        ..Default::default()
    };
    raw
}

struct Setup {
    _dir: TempDir,
    engine: PiEngine,
    sent: Sent,
    clock: Arc<FixedClock>,
}

fn setup(
    checks: Vec<Result<CheckAnswer, CallError>>,
    polls: Vec<Result<PollStatus, CallError>>,
    change: impl Fn(&mut crate::config::RawConfig),
) -> Setup {
    let dir = TempDir::new("pi");
    let mut raw = pi_raw_config(&dir);
    change(&mut raw);
    let cfg = Config::from_raw(&raw).unwrap();
    let fake = Scripted { checks: Mutex::new(checks), polls: Mutex::new(polls), ..Scripted::default() };
    let sent = fake.sent.clone();
    let clock = Arc::new(FixedClock::new(T));
    let engine = PiEngine::with_client("mfa", cfg, clock.clone(), Box::new(fake)).unwrap();
    Setup { _dir: dir, engine, sent, clock }
}

fn login<'a>(user: &'a [u8], pass: &'a [u8], state: Option<&'a [u8]>) -> AuthenticateInput<'a> {
    AuthenticateInput {
        user_name: Some(user),
        password: Some(pass),
        state,
        nas: "192.0.2.1||vpn".into(),
        nas_address: "192.0.2.1".into(),
        ..AuthenticateInput::default()
    }
}

fn field<'a>(call: &'a [(String, String)], name: &str) -> Option<&'a str> {
    call.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn the_whole_credential_goes_to_privacyidea_with_the_mapped_realm() {
    let s = setup(vec![answer(ACCEPT)], vec![], |r| {
        r.reply = vec![RawRule {
            attribute: "Class".into(),
            from: Some("user.groups".into()),
            pattern: Some("^vpn-(.*)$".into()),
            ..RawRule::default()
        }]
    });
    let out = s.engine.authenticate(login(b"alice@example.com", b"pin123456", None));
    assert_eq!(out.outcome, Some(Outcome::Ok));
    assert_eq!(out.reply_attributes, [("Class".to_string(), "admins".to_string())]);
    let sent = s.sent.lock().unwrap();
    assert_eq!(field(&sent[0], "user"), Some("alice"));
    assert_eq!(field(&sent[0], "realm"), Some("corp"));
    assert_eq!(field(&sent[0], "pass"), Some("pin123456"));
    assert_eq!(field(&sent[0], "client"), Some("192.0.2.1"));
    assert!(out.log.iter().all(|l| !l.text.contains("pin123456")), "the password is never logged");
}

#[test]
fn privacyidea_reasons_go_to_the_log_not_the_user() {
    let s = setup(
        vec![
            answer(REJECT),
            answer(r#"{"result":{"status":false,"error":{"code":904,"message":"ERR904: The user can not be found"}}}"#),
        ],
        vec![],
        |_| {},
    );
    for _ in 0..2 {
        let out = s.engine.authenticate(login(b"alice", b"x", None));
        assert_eq!(out.outcome, Some(Outcome::Reject));
        assert_eq!(out.reply_messages, ["Wrong user name, PIN or code"]);
        assert!(out.log.iter().any(|l| l.text.contains("wrong otp pin") || l.text.contains("ERR904")));
    }
}

#[test]
fn unavailable_fails_and_garbage_rejects() {
    let s = setup(
        vec![
            Err(CallError::Unavailable("http://127.0.0.1:1: connection refused".into())),
            Err(CallError::Answer(AnswerError::Malformed("a challenge without a transaction id"))),
        ],
        vec![],
        |_| {},
    );
    let out = s.engine.authenticate(login(b"alice", b"x", None));
    assert_eq!(out.outcome, Some(Outcome::Fail));
    assert_eq!(out.reply_messages, ["Authentication is unavailable, try again later"]);
    let out = s.engine.authenticate(login(b"alice", b"x", None));
    assert_eq!(out.outcome, Some(Outcome::Reject));
}

#[test]
fn a_challenge_travels_sealed_and_comes_back_once() {
    let s = setup(vec![answer(CHALLENGE), answer(ACCEPT)], vec![], |_| {});
    let first = s.engine.authenticate(login(b"alice", b"pin", None));
    assert_eq!(first.outcome, Some(Outcome::Challenge));
    assert_eq!(first.reply_messages, ["please enter otp: "]);
    let state = first.challenge_state.unwrap();
    assert!(!state.windows(20).any(|w| w == b"11112222333344445555"), "the transaction id is not in the clear");

    let second = s.engine.authenticate(login(b"alice", b"123456", Some(&state)));
    assert_eq!(second.outcome, Some(Outcome::Ok));
    assert_eq!(field(&s.sent.lock().unwrap()[1], "transaction_id"), Some("11112222333344445555"));

    // The same State again, another user's, or one we never issued: refused, never forwarded.
    let again = s.engine.authenticate(login(b"alice", b"123456", Some(&state)));
    assert_eq!(again.outcome, Some(Outcome::Reject));
    let other = s.engine.authenticate(login(b"bob", b"123456", Some(&state)));
    assert_eq!(other.outcome, Some(Outcome::Reject));
    let foreign = s.engine.authenticate(login(b"alice", b"123456", Some(b"11112222333344445555")));
    assert_eq!(foreign.outcome, Some(Outcome::Reject));
    assert_eq!(s.sent.lock().unwrap().len(), 2, "no refused State reached privacyIDEA");
}

#[test]
fn a_push_is_polled_then_finalised_with_an_empty_pass() {
    let s = setup(vec![answer(PUSH), answer(ACCEPT)], vec![Ok(PollStatus::Pending), Ok(PollStatus::Accepted)], |_| {});
    let out = s.engine.authenticate(login(b"alice", b"pin", None));
    assert_eq!(out.outcome, Some(Outcome::Ok));
    let sent = s.sent.lock().unwrap();
    assert_eq!(field(&sent[1], "poll"), Some("99998888777766665555"));
    assert_eq!(field(&sent[3], "pass"), Some(""));
    assert_eq!(field(&sent[3], "transaction_id"), Some("99998888777766665555"));
}

#[test]
fn a_declined_push_rejects() {
    let s = setup(vec![answer(PUSH)], vec![Ok(PollStatus::Declined)], |_| {});
    let out = s.engine.authenticate(login(b"alice", b"pin", None));
    assert_eq!(out.outcome, Some(Outcome::Reject));
    assert_eq!(out.reply_messages, ["The login was denied on your device"]);
}

#[test]
fn challenge_mode_holds_no_thread_and_an_empty_answer_polls() {
    let s = setup(vec![answer(PUSH), answer(ACCEPT)], vec![Ok(PollStatus::Pending), Ok(PollStatus::Accepted)], |r| {
        r.privacyidea.poll = Some("challenge".into())
    });
    let first = s.engine.authenticate(login(b"alice", b"pin", None));
    assert_eq!(first.outcome, Some(Outcome::Challenge));
    let pending = s.engine.authenticate(login(b"alice", b"", first.challenge_state.as_deref()));
    assert_eq!(pending.outcome, Some(Outcome::Challenge), "not approved yet: asked again");
    let done = s.engine.authenticate(login(b"alice", b"", pending.challenge_state.as_deref()));
    assert_eq!(done.outcome, Some(Outcome::Ok));
}

/// Each empty answer gets a new State, but the challenge still ends `challenge_timeout`
/// after it began: asking again does not keep it open for ever.
#[test]
fn asking_again_keeps_the_first_expiry() {
    let s = setup(vec![answer(PUSH)], vec![Ok(PollStatus::Pending), Ok(PollStatus::Pending)], |r| {
        r.privacyidea.poll = Some("challenge".into())
    });
    let first = s.engine.authenticate(login(b"alice", b"pin", None));
    s.clock.advance(100);
    let pending = s.engine.authenticate(login(b"alice", b"", first.challenge_state.as_deref()));
    assert_eq!(pending.outcome, Some(Outcome::Challenge));
    // 121 s after the first State (challenge_timeout = 120), 21 s after the second.
    s.clock.advance(21);
    let late = s.engine.authenticate(login(b"alice", b"", pending.challenge_state.as_deref()));
    assert_eq!(late.outcome, Some(Outcome::Reject), "{:?}", late.log);
    assert_eq!(s.sent.lock().unwrap().len(), 2, "the expired State reached privacyIDEA");
    assert_eq!(late.reply_messages, [s.engine.config().messages.bad_state.clone()]);
}

/// `realm { strip = no }` keeps the realm in the name tokens are looked up by; what
/// privacyIDEA gets as `user`, once the realm is split off, is the name without it.
#[test]
fn a_split_name_goes_without_its_realm_whatever_strip_says() {
    let s = setup(vec![answer(ACCEPT), answer(ACCEPT)], vec![], |r| {
        r.realm.strip = false;
    });
    assert_eq!(s.engine.authenticate(login(b"alice@example.com", b"pin123456", None)).outcome, Some(Outcome::Ok));
    let s2 = setup(vec![answer(ACCEPT)], vec![], |r| {
        r.realm.strip = false;
        r.privacyidea.user_name = Some("split".into());
    });
    assert_eq!(s2.engine.authenticate(login(b"bob@mail.test", b"pin123456", None)).outcome, Some(Outcome::Ok));
    let listed = &s.sent.lock().unwrap()[0];
    assert_eq!((field(listed, "user"), field(listed, "realm")), (Some("alice"), Some("corp")));
    let split = &s2.sent.lock().unwrap()[0];
    assert_eq!((field(split, "user"), field(split, "realm")), (Some("bob"), Some("mail.test")));
}

#[test]
fn an_otp_typed_instead_of_approving_is_checked() {
    let s = setup(vec![answer(PUSH), answer(ACCEPT)], vec![], |r| r.privacyidea.poll = Some("challenge".into()));
    let first = s.engine.authenticate(login(b"alice", b"pin", None));
    let done = s.engine.authenticate(login(b"alice", b"287082", first.challenge_state.as_deref()));
    assert_eq!(done.outcome, Some(Outcome::Ok));
    assert_eq!(field(&s.sent.lock().unwrap()[1], "pass"), Some("287082"));
}

#[test]
fn authorize_sets_auth_type_and_strips_the_realm() {
    let s = setup(vec![], vec![], |_| {});
    let out = s.engine.authorize(AuthorizeInput {
        user_name: Some(b"alice@example.com"),
        password: Some(b"x"),
        auth_type: None,
        has_state: false,
        eap: false,
        quiet: false,
    });
    assert_eq!(out.outcome, Some(Outcome::Updated));
    assert!(out.set_auth_type);
    assert_eq!(out.stripped_user_name.as_deref(), Some("alice"));
    assert!(out.password.is_none(), "the password is left whole for privacyIDEA");
}

#[test]
fn the_local_store_maps_groups_too() {
    let dir = TempDir::new("localmap");
    dir.file(
        "tokens.json",
        &format!(
            r#"{{"users": {{"alice": {{"groups": ["vpn-sales"], "tokens": [{{"serial": "T1", "type": "totp", "secret": "{}"}}]}}}}}}"#,
            super::test_config::SEED_B32
        ),
        0o640,
    );
    let mut raw = raw_config(dir.path(), "otp");
    raw.reply = vec![RawRule {
        attribute: "Filter-Id".into(),
        from: Some("user.groups".into()),
        prefix: Some("acl-".into()),
        ..RawRule::default()
    }];
    let engine = Engine::new("mfa", Config::from_raw(&raw).unwrap(), Arc::new(FixedClock::new(T))).unwrap();
    let code = crate::factor::otp::hotp_code(super::test_config::SEED, T / 30, 6, crate::factor::otp::Algorithm::Sha1);
    let out = engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(code.as_bytes()),
        ..AuthenticateInput::default()
    });
    assert_eq!(out.outcome, Some(Outcome::Ok));
    assert_eq!(out.reply_attributes, [("Filter-Id".to_string(), "acl-vpn-sales".to_string())]);
}

/// Answers every check with an accept, slowly, and counts the checks.
struct SlowAccept(std::sync::atomic::AtomicUsize);

impl Validate for SlowAccept {
    fn check(&self, _form: &[(&str, &str)]) -> Called<CheckAnswer> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(300));
        answer(ACCEPT).into()
    }
    fn poll(&self, _transaction_id: &str) -> Called<PollStatus> {
        Ok(PollStatus::Pending).into()
    }
}

/// A fake that the test keeps a handle on while an engine owns it.
struct Shared<T>(Arc<T>);

impl<T: Validate> Validate for Shared<T> {
    fn check(&self, form: &[(&str, &str)]) -> Called<CheckAnswer> {
        self.0.check(form)
    }
    fn poll(&self, id: &str) -> Called<PollStatus> {
        self.0.poll(id)
    }
}

#[test]
fn a_resent_login_joins_the_one_in_progress() {
    let dir = TempDir::new("pi-join");
    let raw = pi_raw_config(&dir);
    let counter = Arc::new(SlowAccept(std::sync::atomic::AtomicUsize::new(0)));
    let engine = PiEngine::with_client(
        "mfa",
        Config::from_raw(&raw).unwrap(),
        Arc::new(FixedClock::new(T)),
        Box::new(Shared(counter.clone())),
    )
    .unwrap();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..3).map(|_| s.spawn(|| engine.authenticate(login(b"alice", b"pin123456", None)).outcome)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes, [Some(Outcome::Ok); 3]);
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1, "one check for the three copies");
    // Once it has ended, the same login is a new one (privacyIDEA decides about it afresh).
    engine.authenticate(login(b"alice", b"pin123456", None));
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// Counts every call; must not be asked (the other server asks).
#[derive(Default)]
struct Unasked(std::sync::atomic::AtomicUsize);

impl Validate for Unasked {
    fn check(&self, _form: &[(&str, &str)]) -> Called<CheckAnswer> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        answer(REJECT).into()
    }
    fn poll(&self, _transaction_id: &str) -> Called<PollStatus> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(PollStatus::Pending).into()
    }
}

#[test]
fn a_code_resent_to_the_other_server_gets_the_first_servers_answer() {
    let dir = TempDir::new("pi-farm");
    let mut raw = pi_raw_config(&dir);
    raw.state_store = Some("redis".into());
    raw.reply = vec![RawRule { attribute: "Filter-Id".into(), from: Some("serial".into()), ..RawRule::default() }];
    let cfg = Config::from_raw(&raw).unwrap();
    let store = super::joining::farm::testing::Logins::default();
    let server = |client: Box<dyn Validate>| {
        let engine = PiEngine::with_client("mfa", cfg.clone(), Arc::new(FixedClock::new(T)), client).unwrap();
        engine.in_farm(Box::new(store.clone()))
    };
    let slow = Arc::new(SlowAccept(std::sync::atomic::AtomicUsize::new(0)));
    let unasked = Arc::new(Unasked::default());
    let (a, b) = (server(Box::new(Shared(slow.clone()))), server(Box::new(Shared(unasked.clone()))));
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| a.authenticate(login(b"alice", b"pin123456", None)));
        while slow.0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let second = b.authenticate(login(b"alice", b"pin123456", None));
        (first.join().unwrap(), second)
    });
    assert_eq!(first.outcome, Some(Outcome::Ok));
    assert_eq!(second.outcome, Some(Outcome::Ok), "the re-send answers as the first");
    assert_eq!(second.reply_attributes, first.reply_attributes);
    assert_eq!(second.reply_attributes, [("Filter-Id".to_string(), "HOTP1".to_string())]);
    assert_eq!(unasked.0.load(std::sync::atomic::Ordering::SeqCst), 0, "the code went to privacyIDEA once");
    let keys: Vec<String> = store.0.lock().unwrap().keys().cloned().collect();
    assert!(keys.iter().all(|k| !k.contains("alice") && k.len() == 40), "keyed names only: {keys:?}");
}

/// Every check starts a push; every poll waits until the test opens the gate,
/// then says declined.
#[derive(Default)]
struct HeldPush {
    open: Mutex<bool>,
    opened: std::sync::Condvar,
    polling: std::sync::atomic::AtomicUsize,
}

impl Validate for HeldPush {
    fn check(&self, _form: &[(&str, &str)]) -> Called<CheckAnswer> {
        answer(PUSH).into()
    }
    fn poll(&self, _transaction_id: &str) -> Called<PollStatus> {
        self.polling.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let open = self.opened.wait_while(self.open.lock().unwrap(), |open| !*open).unwrap();
        drop(open);
        Ok(PollStatus::Declined).into()
    }
}

/// Past `max_waiting`, a push login gets the challenge with `push_prompt`,
/// shown without the number and correlation the module did not make up.
#[test]
fn past_max_waiting_a_push_login_gets_the_plain_prompt() {
    let dir = TempDir::new("pi-busy");
    let mut raw = pi_raw_config(&dir);
    raw.privacyidea.max_waiting = 1;
    let held = Arc::new(HeldPush::default());
    let engine = PiEngine::with_client(
        "mfa",
        Config::from_raw(&raw).unwrap(),
        Arc::new(FixedClock::new(T)),
        Box::new(Shared(held.clone())),
    )
    .unwrap();
    /// Opens the gate when dropped, so that a failed assertion ends the test, not hangs it.
    struct Opens<'a>(&'a HeldPush);
    impl Drop for Opens<'_> {
        fn drop(&mut self) {
            *self.0.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
            self.0.opened.notify_all();
        }
    }
    std::thread::scope(|s| {
        let first = s.spawn(|| engine.authenticate(login(b"bob", b"pin", None)).outcome);
        let opens = Opens(&held);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while held.polling.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "bob's push was never polled");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let busy = engine.authenticate(login(b"alice", b"pin", None));
        assert_eq!(busy.outcome, Some(Outcome::Challenge));
        assert_eq!(busy.reply_messages, ["Approve the login on your device, then press OK"]);
        drop(opens);
        assert_eq!(first.join().unwrap(), Some(Outcome::Reject));
    });
}

//! The Duo backend's decisions against a scripted Duo: what is sent, and how
//! each answer (and each failure) ends.

use std::sync::Mutex;

use super::*;
use crate::backend::duo::{Answer, CallError, DuoApi};
use crate::stats::{Cause, Tally};
use crate::testutil::TempDir;

use super::test_config::raw_config;

type Sent = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// Answers in the order given and records every call (path and parameters).
struct Scripted {
    answers: Mutex<Vec<Result<Answer, CallError>>>,
    sent: Sent,
}

impl DuoApi for Scripted {
    fn call(&self, _method: &str, path: &str, params: &[(&str, &str)]) -> Result<Answer, CallError> {
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.sent.lock().unwrap().push((path.to_string(), params));
        self.answers.lock().unwrap().remove(0)
    }
}

fn ok(json: &str) -> Result<Answer, CallError> {
    Ok(serde_json::from_str(json).unwrap())
}

fn duo(
    dir: &TempDir,
    mode: &str,
    extra: &[(&str, &str)],
    answers: Vec<Result<Answer, CallError>>,
) -> (DuoEngine, Sent) {
    duo_at(dir, mode, extra, answers, Arc::new(crate::clock::FixedClock::new(1_700_000_000)))
}

/// As [`duo`], on `clock`.
fn duo_at(
    dir: &TempDir,
    mode: &str,
    extra: &[(&str, &str)],
    answers: Vec<Result<Answer, CallError>>,
    clock: Arc<crate::clock::FixedClock>,
) -> (DuoEngine, Sent) {
    let mut raw = raw_config(dir.path(), mode);
    raw.backend = Some("duo".into());
    raw.duo.api_host = Some("api-test.duosecurity.com".into());
    raw.duo.integration_key = Some("DIWJ8X6AEYOR5OMC6TQ1".into());
    raw.duo.secret_key = Some("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into());
    raw.duo.wait = 5;
    raw.duo.poll_interval = 1;
    for (item, value) in extra {
        match *item {
            "failmode" => raw.duo.failmode = Some(value.to_string()),
            "enroll" => raw.duo.enroll = Some(value.to_string()),
            "approval" => raw.duo.approval = Some(value.to_string()),
            "max_rounds" => raw.max_rounds = value.parse().unwrap(),
            _ => unreachable!(),
        }
    }
    let cfg = Config::from_raw(&raw).unwrap();
    let sent = Sent::default();
    let api = Scripted { answers: Mutex::new(answers), sent: sent.clone() };
    (DuoEngine::with_api("mfa", cfg, clock, Box::new(api)).unwrap(), sent)
}

fn login(engine: &DuoEngine, password: &str, stashed: Option<&str>) -> AuthenticateOutput {
    engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(password.as_bytes()),
        nas_name: "vpn-gw-1".into(),
        session: "192.0.2.7|3".into(),
        stashed_code: stashed.map(str::to_string),
        ..AuthenticateInput::default()
    })
}

const AUTH: &str = r#"{"result":"auth","status_msg":"Account is active"}"#;

#[test]
fn a_passcode_goes_to_duo_and_its_answer_decides() {
    let dir = TempDir::new("duo-passcode");
    let answers = vec![
        ok(AUTH),
        ok(r#"{"result":"allow","status":"allow"}"#),
        ok(AUTH),
        ok(r#"{"result":"deny","status":"deny","status_msg":"Incorrect passcode"}"#),
    ];
    let (engine, sent) = duo(&dir, "otp", &[], answers);
    assert_eq!(login(&engine, "123456", None).outcome, Some(Outcome::Ok));
    let out = login(&engine, "654321", None);
    assert_eq!(out.outcome, Some(Outcome::Reject));
    let log: Vec<&str> = out.log.iter().map(|l| l.text.as_str()).collect();
    assert!(log.iter().any(|l| l.contains("Incorrect passcode")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("654321")), "never the passcode: {log:?}");
    let sent = sent.lock().unwrap();
    assert_eq!(sent[0].0, "/auth/v2/preauth");
    assert!(sent[0].1.contains(&("ipaddr".into(), "192.0.2.7".into())));
    assert_eq!(sent[1].0, "/auth/v2/auth");
    assert!(sent[1].1.contains(&("factor".into(), "passcode".into())));
    assert!(sent[1].1.contains(&("passcode".into(), "123456".into())));
}

#[test]
fn a_push_is_polled_until_approved() {
    let dir = TempDir::new("duo-push");
    let answers = vec![
        ok(AUTH),
        ok(r#"{"txid":"tx-1"}"#),
        ok(r#"{"result":"waiting","status":"pushed"}"#),
        Err(CallError::TimedOut),
        ok(r#"{"result":"allow","status":"allow"}"#),
    ];
    let (engine, sent) = duo(&dir, "push", &[], answers);
    assert_eq!(login(&engine, "pw", None).outcome, Some(Outcome::Ok));
    let sent = sent.lock().unwrap();
    assert!(sent[1].1.contains(&("pushinfo".into(), "nas=vpn-gw-1".into())));
    assert!(sent[1].1.contains(&("async".into(), "1".into())));
    assert_eq!(sent[4], ("/auth/v2/auth_status".into(), vec![("txid".into(), "tx-1".into())]));
}

#[test]
fn preauth_allow_deny_and_enroll() {
    let dir = TempDir::new("duo-preauth");
    let (engine, _) = duo(
        &dir,
        "push",
        &[],
        vec![ok(r#"{"result":"allow"}"#), ok(r#"{"result":"deny"}"#), ok(r#"{"result":"enroll"}"#)],
    );
    assert_eq!(login(&engine, "pw", None).outcome, Some(Outcome::Ok));
    assert_eq!(login(&engine, "pw", None).outcome, Some(Outcome::Reject));
    assert_eq!(login(&engine, "pw", None).outcome, Some(Outcome::Reject));
    let (allowing, _) = duo(&dir, "push", &[("enroll", "allow")], vec![ok(r#"{"result":"enroll"}"#)]);
    assert_eq!(login(&allowing, "pw", None).outcome, Some(Outcome::Ok));
}

#[test]
fn failures_follow_failmode_but_a_rate_limit_never_accepts() {
    let dir = TempDir::new("duo-failmode");
    let down = || Err(CallError::Unavailable("connection refused".into()));
    // A passcode's login: no push was sent, Duo is unavailable.
    let (secure, _) = duo(&dir, "password+otp", &[], vec![down()]);
    let refused = login(&secure, "pw", Some("123456"));
    assert_eq!(
        (refused.outcome, refused.tally()),
        (Some(Outcome::Reject), Tally::Reject { cause: Cause::Unavailable, locks: false })
    );
    // A push's (its /preauth, or the push itself): a push that failed, as the local provider's.
    for answers in [vec![down()], vec![ok(AUTH), down()]] {
        let (secure, _) = duo(&dir, "push", &[], answers);
        let refused = login(&secure, "pw", None);
        assert_eq!(
            (refused.outcome, refused.tally()),
            (Some(Outcome::Reject), Tally::Reject { cause: Cause::PushFailed, locks: false })
        );
    }
    let (safe, _) = duo(&dir, "password+otp", &[("failmode", "safe")], vec![down(), Err(CallError::RateLimited)]);
    let accepted = login(&safe, "pw", Some("123456"));
    assert_eq!((accepted.outcome, accepted.tally()), (Some(Outcome::Ok), Tally::FailsafeAccept));
    assert_eq!(login(&safe, "pw", Some("123456")).outcome, Some(Outcome::Fail));
    let (safe, _) = duo(&dir, "password+otp", &[("failmode", "safe")], vec![Err(CallError::BackingOff)]);
    assert_eq!(login(&safe, "pw", Some("123456")).outcome, Some(Outcome::Fail), "nor the back-off after one");
}

/// A relay's or proxy's own 403 or 407, a redirect: refused, whatever failmode
/// says, never accepted on the password alone.
#[test]
fn a_refusal_that_is_not_duos_never_follows_failmode() {
    let dir = TempDir::new("duo-not-duo");
    for status in [302, 403, 407] {
        let blocked = || Err(CallError::NotDuo { status });
        for (mode, answers) in [("password+otp", vec![blocked()]), ("push", vec![ok(AUTH), blocked()])] {
            let (safe, _) = duo(&dir, mode, &[("failmode", "safe")], answers);
            let out = login(&safe, "pw", Some("123456"));
            assert_eq!(
                (out.outcome, out.tally()),
                (Some(Outcome::Reject), Tally::Reject { cause: Cause::Unavailable, locks: false }),
                "{mode}, HTTP {status}"
            );
            assert_eq!(out.reply_messages, vec![safe.config().messages.internal.clone()]);
            assert!(out.log.iter().any(|l| l.text.contains(&format!("HTTP {status}"))), "{:?}", out.log);
        }
    }
}

/// EAP-GTC's Auth-Type calls the module before pap checks the password: Duo would
/// send the push there, and an approval would get in on a password nobody checked.
/// Such a call is refused, and Duo is asked nothing.
#[test]
fn an_inner_eap_gtc_call_is_refused_before_duo_is_asked() {
    let dir = TempDir::new("duo-gtc");
    let (engine, sent) = duo(&dir, "push", &[], vec![ok(AUTH)]);
    let backend = Backend::Duo(Box::new(engine));
    let out = backend.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"not-checked"),
        eap: true,
        inner: true,
        ..AuthenticateInput::default()
    });
    assert_eq!(out.outcome, Some(Outcome::Fail), "{out:?}");
    assert!(out.log.iter().any(|l| l.text.contains("backend duo cannot serve EAP-GTC")), "{:?}", out.log);
    assert!(sent.lock().unwrap().is_empty(), "Duo was asked");
}

#[test]
fn the_push_word_asks_for_a_push_in_password_otp() {
    let dir = TempDir::new("duo-word");
    let answers = vec![ok(AUTH), ok(r#"{"txid":"t"}"#), ok(r#"{"result":"deny","status":"fraud"}"#)];
    let (engine, sent) = duo(&dir, "password+otp", &[], answers);
    let out = login(&engine, "pw", Some("push"));
    assert_eq!(out.reply_messages, vec![engine.config().messages.push_denied.clone()]);
    assert!(sent.lock().unwrap()[1].1.contains(&("factor".into(), "push".into())));

    let answers = vec![ok(AUTH), ok(r#"{"txid":"t"}"#), ok(r#"{"result":"allow","status":"allow"}"#)];
    let (engine, sent) = duo(&dir, "password+otp", &[], answers);
    assert_eq!(login(&engine, "pw", Some("Phone")).outcome, Some(Outcome::Ok));
    let call = &sent.lock().unwrap()[1].1;
    assert!(call.contains(&("factor".into(), "phone".into())));
    assert!(!call.iter().any(|(k, _)| k == "pushinfo"), "pushinfo is for pushes");
}

/// Holds `/preauth` until the test lets it go; allows every passcode.
struct Gated {
    release: Mutex<std::sync::mpsc::Receiver<()>>,
    calls: std::sync::atomic::AtomicUsize,
}

impl DuoApi for Gated {
    fn call(&self, _method: &str, path: &str, _params: &[(&str, &str)]) -> Result<Answer, CallError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if path == "/auth/v2/preauth" {
            let _ = self.release.lock().unwrap().recv();
            return ok(AUTH);
        }
        ok(r#"{"result":"allow","status":"allow"}"#)
    }
}

/// The engine's handle on a [`Gated`] API the test also holds.
struct Shared(Arc<Gated>);

impl DuoApi for Shared {
    fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Answer, CallError> {
        self.0.call(method, path, params)
    }
}

/// A Duo engine in mode otp (`duo.timeout` as given) whose first login is held
/// in `/preauth` until the returned sender releases it; the thread of that
/// login, started and inside `/preauth`; the API, for its count of calls.
fn held_first_login(
    dir: &TempDir,
    timeout: Option<u32>,
) -> (Arc<DuoEngine>, Arc<Gated>, std::sync::mpsc::Sender<()>, std::thread::JoinHandle<Option<Outcome>>) {
    let mut raw = raw_config(dir.path(), "otp");
    raw.backend = Some("duo".into());
    raw.duo.api_host = Some("api-test.duosecurity.com".into());
    raw.duo.integration_key = Some("DIKEY".into());
    raw.duo.secret_key = Some("skey".into());
    if let Some(timeout) = timeout {
        raw.duo.timeout = timeout;
    }
    let (release, gate) = std::sync::mpsc::channel();
    let api = Arc::new(Gated { release: Mutex::new(gate), calls: Default::default() });
    let engine = Arc::new(
        DuoEngine::with_api(
            "mfa",
            Config::from_raw(&raw).unwrap(),
            Arc::new(crate::clock::FixedClock::new(1_700_000_000)),
            Box::new(Shared(api.clone())),
        )
        .unwrap(),
    );
    let first = {
        let engine = engine.clone();
        std::thread::spawn(move || login(&engine, "123456", None).outcome)
    };
    while api.calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    (engine, api, release, first)
}

#[test]
fn a_resend_with_a_new_id_joins_the_login_in_progress() {
    use std::sync::atomic::Ordering;
    let dir = TempDir::new("duo-join");
    let (engine, api, release, first) = held_first_login(&dir, None);
    let second = {
        let engine = engine.clone();
        std::thread::spawn(move || login(&engine, "123456", None).outcome)
    };
    while engine.joiners() == 0 {
        std::thread::yield_now();
    }
    release.send(()).unwrap();
    assert_eq!(first.join().unwrap(), Some(Outcome::Ok));
    assert_eq!(second.join().unwrap(), Some(Outcome::Ok), "the re-send gets the same answer");
    assert_eq!(api.calls.load(Ordering::SeqCst), 2, "one preauth and one auth: the passcode went to Duo once");
}

/// A re-send waits for the login it joined no longer than that login may take
/// (`duo.longest`, checked against max_request_time at start-up): refused, as
/// unavailable, while the first is still held here.
#[test]
fn a_resend_waits_no_longer_than_the_login_it_joined_may_take() {
    let dir = TempDir::new("duo-join-bound");
    let (engine, _api, release, first) = held_first_login(&dir, Some(1));
    let longest = engine.config().duo.as_ref().unwrap().longest;
    assert_eq!(longest, std::time::Duration::from_secs(2), "mode otp: preauth and auth, a timeout each");
    let started = std::time::Instant::now();
    let resent = login(&engine, "123456", None);
    assert_eq!(resent.outcome, Some(Outcome::Fail), "refused as unavailable, not left waiting");
    let waited = started.elapsed();
    assert!(waited >= longest, "it waited for the first as long as that may take");
    // Not duo.wait + 4 x timeout (19 s here), the bound before: past max_request_time
    // with the defaults, the server would have dropped the re-send unanswered.
    assert!(waited < longest * 5, "waited {waited:?}");
    assert!(resent.log.iter().any(|l| l.text.contains("did not end in time")), "{:?}", resent.log);
    release.send(()).unwrap();
    assert_eq!(first.join().unwrap(), Some(Outcome::Ok), "the first, held past that, still decides");
}

/// The password alone, from the NAS that `answer` answers from.
fn ask(engine: &DuoEngine) -> AuthenticateOutput {
    engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        nas: "127.0.0.1||".into(),
        ..AuthenticateInput::default()
    })
}

fn answer(engine: &DuoEngine, state: &[u8], typed: &str) -> AuthenticateOutput {
    engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(typed.as_bytes()),
        state: Some(state),
        nas: "127.0.0.1||".into(),
        ..AuthenticateInput::default()
    })
}

#[test]
fn a_push_by_challenge_is_checked_in_the_answer_round() {
    let dir = TempDir::new("duo-challenge");
    let answers = vec![
        ok(AUTH),
        ok(r#"{"txid":"tx-9"}"#),
        ok(r#"{"result":"waiting","status":"pushed"}"#),
        ok(r#"{"result":"allow","status":"allow"}"#),
        ok(r#"{"result":"allow","status":"allow"}"#),
    ];
    let (engine, sent) = duo(&dir, "push", &[("approval", "challenge")], answers);
    let first = engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        nas: "127.0.0.1||".into(),
        ..AuthenticateInput::default()
    });
    assert_eq!(first.outcome, Some(Outcome::Challenge));
    assert_eq!(first.reply_messages, vec!["Approve the login on your device, then press OK".to_string()]);
    let state = first.challenge_state.unwrap();
    assert!(!state.windows(4).any(|w| w == b"tx-9"), "the txid travels sealed");
    let pending = answer(&engine, &state, "");
    assert_eq!(pending.outcome, Some(Outcome::Challenge), "not approved yet: asked again");
    assert_eq!(answer(&engine, &state, "").outcome, Some(Outcome::Reject), "a State answers once");
    let again = pending.challenge_state.unwrap();
    assert_eq!(answer(&engine, &again, "").outcome, Some(Outcome::Ok));
    let sent = sent.lock().unwrap();
    assert_eq!(sent[2], ("/auth/v2/auth_status".into(), vec![("txid".into(), "tx-9".into())]));
    assert_eq!(sent.len(), 4, "the replayed State never reached Duo");
    drop(sent);

    // A passcode typed instead of approving goes to Duo as one.
    let (engine, sent) = duo(
        &dir,
        "push",
        &[("approval", "challenge")],
        vec![ok(AUTH), ok(r#"{"txid":"t"}"#), ok(r#"{"result":"allow"}"#)],
    );
    let first = engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        nas: "127.0.0.1||".into(),
        ..AuthenticateInput::default()
    });
    let state = first.challenge_state.unwrap();
    // Bound to the NAS: another one cannot answer it (and Duo is not asked).
    let elsewhere = engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b""),
        state: Some(&state),
        nas: "192.0.2.9||".into(),
        ..AuthenticateInput::default()
    });
    assert_eq!(elsewhere.outcome, Some(Outcome::Reject));
    assert_eq!(answer(&engine, &state, "123456").outcome, Some(Outcome::Ok));
    assert!(sent.lock().unwrap()[2].1.contains(&("passcode".into(), "123456".into())));
}

/// "Not approved yet" asks again until `max_rounds` answers end the dialogue;
/// each State asked again keeps the first one's expiry.
#[test]
fn a_push_by_challenge_is_bounded_by_max_rounds_and_challenge_timeout() {
    let dir = TempDir::new("duo-challenge-rounds");
    let waiting = || ok(r#"{"result":"waiting","status":"pushed"}"#);
    let answers = vec![ok(AUTH), ok(r#"{"txid":"tx-9"}"#), waiting(), waiting(), waiting()];
    let (engine, sent) = duo(&dir, "push", &[("approval", "challenge"), ("max_rounds", "3")], answers);
    let mut state = ask(&engine).challenge_state.unwrap();
    for round in 1..3 {
        let pending = answer(&engine, &state, "");
        assert_eq!(pending.outcome, Some(Outcome::Challenge), "answer {round}: asked again");
        state = pending.challenge_state.unwrap();
    }
    let ended = answer(&engine, &state, "");
    assert_eq!(
        (ended.outcome, ended.tally()),
        (Some(Outcome::Reject), Tally::Reject { cause: Cause::PushTimeout, locks: false }),
        "the third answer without approval ends the dialogue"
    );
    assert_eq!(sent.lock().unwrap().len(), 5, "one /auth_status per answer");

    let clock = Arc::new(crate::clock::FixedClock::new(1_700_000_000));
    let answers = vec![ok(AUTH), ok(r#"{"txid":"tx-9"}"#), waiting(), waiting()];
    let (engine, sent) =
        duo_at(&dir, "push", &[("approval", "challenge"), ("max_rounds", "10")], answers, clock.clone());
    let first = ask(&engine).challenge_state.unwrap();
    clock.advance(100);
    let pending = answer(&engine, &first, "");
    assert_eq!(pending.outcome, Some(Outcome::Challenge));
    clock.advance(100);
    let late = answer(&engine, &pending.challenge_state.unwrap(), "");
    assert_eq!(
        (late.outcome, late.tally()),
        (Some(Outcome::Reject), Tally::Reject { cause: Cause::BadState, locks: false }),
        "200 s after the first challenge: challenge_timeout (180) is over"
    );
    assert_eq!(sent.lock().unwrap().len(), 3, "the expired State never reached Duo");
}

/// Typing `push` in an answer round starts a new push and its challenge: a round too,
/// so words cannot reset the count that `max_rounds` bounds.
#[test]
fn a_word_in_the_answer_round_counts_a_round() {
    let dir = TempDir::new("duo-word-rounds");
    let waiting = || ok(r#"{"result":"waiting","status":"pushed"}"#);
    let answers = vec![ok(AUTH), ok(r#"{"txid":"tx-1"}"#), waiting(), ok(r#"{"txid":"tx-2"}"#)];
    let (engine, sent) = duo(&dir, "push", &[("approval", "challenge"), ("max_rounds", "3")], answers);
    let first = ask(&engine).challenge_state.unwrap();
    let pending = answer(&engine, &first, "");
    assert_eq!(pending.outcome, Some(Outcome::Challenge), "round 2");
    let again = answer(&engine, &pending.challenge_state.unwrap(), "push");
    assert_eq!(again.outcome, Some(Outcome::Challenge), "round 3: a new push");
    let calls = sent.lock().unwrap().len();
    let ended = answer(&engine, &again.challenge_state.unwrap(), "push");
    assert_eq!(
        (ended.outcome, ended.tally()),
        (Some(Outcome::Reject), Tally::Reject { cause: Cause::BadState, locks: false }),
        "a fourth challenge is past max_rounds"
    );
    assert_eq!(sent.lock().unwrap().len(), calls, "no push sent past max_rounds");
}

#[test]
fn sms_passcodes_are_sent_then_typed() {
    let dir = TempDir::new("duo-sms");
    let preauth = r#"{"result":"auth","devices":[{"device":"D1","capabilities":["push"],"display_name":"Tablet"},
        {"device":"D2","capabilities":["sms","phone"],"display_name":"Phone (XXX-XXX-1234)"}]}"#;
    let sent = || ok(r#"{"result":"deny","status":"sent","status_msg":"New SMS passcodes sent."}"#);
    // Without the State key: a Reject that says where they went.
    let (engine, calls) = duo(&dir, "password+otp", &[], vec![ok(preauth), sent()]);
    let out = login(&engine, "pw", Some("SMS"));
    assert_eq!(out.outcome, Some(Outcome::Reject));
    assert_eq!(out.reply_messages, vec!["Enter the code sent to Phone (XXX-XXX-1234):".to_string()]);
    assert!(calls.lock().unwrap()[1].1.contains(&("factor".into(), "sms".into())));
    // With it: a challenge; an empty answer is no passcode, a typed one goes to Duo.
    let answers = vec![ok(preauth), sent(), ok(r#"{"result":"allow"}"#)];
    let (engine, _) = duo(&dir, "password+otp", &[("approval", "challenge")], answers);
    let challenge = engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        stashed_code: Some("sms".into()),
        nas: "127.0.0.1||".into(),
        ..AuthenticateInput::default()
    });
    assert_eq!(challenge.outcome, Some(Outcome::Challenge));
    let state = challenge.challenge_state.unwrap();
    assert_eq!(answer(&engine, &state, "").outcome, Some(Outcome::Reject));
    let (engine, _) =
        duo(&dir, "password+otp", &[("approval", "challenge")], vec![ok(preauth), sent(), ok(r#"{"result":"allow"}"#)]);
    let challenge = engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        password: Some(b"pw"),
        stashed_code: Some("sms".into()),
        nas: "127.0.0.1||".into(),
        ..AuthenticateInput::default()
    });
    assert_eq!(answer(&engine, &challenge.challenge_state.unwrap(), "777777").outcome, Some(Outcome::Ok));
}

#[test]
fn auto_splits_a_passcode_or_a_word_and_asks_otherwise() {
    let dir = TempDir::new("duo-auto");
    let (engine, _) = duo(&dir, "auto", &[], vec![]);
    let split = |field: &str| {
        let out = engine.authorize(AuthorizeInput {
            user_name: Some(b"alice"),
            password: Some(field.as_bytes()),
            auth_type: None,
            has_state: false,
            eap: false,
            quiet: false,
        });
        (out.password, out.stashed_code)
    };
    assert_eq!(split("pw,123456"), (Some("pw".into()), Some("123456".into())));
    assert_eq!(split("pw,Push"), (Some("pw".into()), Some("Push".into())));
    assert_eq!(split("pw,sms"), (Some("pw".into()), Some("sms".into())));
    // The separator with nothing after it asks for a push, as "password,push" does.
    assert_eq!(split("pw,"), (Some("pw".into()), Some("push".into())));
    assert_eq!(split("pw,push"), (Some("pw".into()), Some("push".into())));
    assert_eq!(split("pw,abc"), (None, None), "the password alone, with its comma");
    assert_eq!(split("pw"), (None, None));

    // The password alone: a challenge; "push" in the answer sends the push.
    let answers = vec![
        ok(AUTH),
        ok(r#"{"txid":"t1"}"#),
        ok(r#"{"result":"allow","status":"allow"}"#),
        ok(AUTH),
        ok(r#"{"result":"allow","status":"allow"}"#),
    ];
    let (engine, sent) = duo(&dir, "auto", &[], answers);
    let first = ask(&engine);
    assert_eq!(first.outcome, Some(Outcome::Challenge));
    assert_eq!(first.reply_messages, vec![engine.config().messages.prompt_code.clone()]);
    assert_eq!(answer(&engine, &first.challenge_state.unwrap(), "push").outcome, Some(Outcome::Ok));
    assert!(sent.lock().unwrap()[1].1.contains(&("factor".into(), "push".into())));
    // A passcode in the answer goes to Duo as one.
    let second = ask(&engine);
    assert_eq!(answer(&engine, &second.challenge_state.unwrap(), "123456").outcome, Some(Outcome::Ok));
    assert!(sent.lock().unwrap()[4].1.contains(&("passcode".into(), "123456".into())));
}

#[test]
fn the_menu_offers_the_users_devices_and_the_answer_picks_one() {
    let dir = TempDir::new("duo-menu");
    let two = r#"{"result":"auth","devices":[
        {"device":"DP1","capabilities":["push","phone"],"display_name":"iOS (XXX-XXX-1111)"},
        {"device":"DP2","capabilities":["push","sms"],"display_name":"Android (XXX-XXX-2222)"}]}"#;
    let answers = vec![
        ok(two),
        ok(two),
        ok(r#"{"txid":"t2"}"#),
        ok(r#"{"result":"allow","status":"allow"}"#),
        ok(two),
        ok(two),
        ok(r#"{"result":"auth","devices":[]}"#),
    ];
    let (engine, sent) = duo(&dir, "auto", &[], answers);
    let menu = ask(&engine);
    assert_eq!(menu.outcome, Some(Outcome::Challenge));
    assert_eq!(
        menu.reply_messages,
        vec![concat!(
            "Choose how to confirm this login:\n",
            "1. Duo Push to iOS (XXX-XXX-1111)\n",
            "2. Duo Push to Android (XXX-XXX-2222)\n",
            "3. Phone call to iOS (XXX-XXX-1111)\n",
            "4. SMS passcodes to Android (XXX-XXX-2222)\n",
            "5. A passcode\n",
            "Enter 1 to 5:"
        )],
        "the whole menu in one Reply-Message"
    );
    let state = menu.challenge_state.unwrap();
    assert!(!state.windows(3).any(|w| w == b"DP2"), "the choices travel sealed");
    assert_eq!(answer(&engine, &state, "2").outcome, Some(Outcome::Ok));
    let push = sent.lock().unwrap()[2].1.clone();
    assert!(push.contains(&("device".into(), "DP2".into())), "{push:?}");
    assert!(push.contains(&("factor".into(), "push".into())));
    // A number not on the menu: the menu again, and Duo gets no /auth.
    let menu = ask(&engine);
    let again = answer(&engine, &menu.challenge_state.unwrap(), "9");
    assert_eq!(again.outcome, Some(Outcome::Challenge));
    assert!(again.reply_messages[0].ends_with("\nEnter a number from 1 to 5:"), "{again:?}");
    // The devices changed since the menu was shown: the answer is refused.
    let out = answer(&engine, &again.challenge_state.unwrap(), "1");
    assert_eq!(out.outcome, Some(Outcome::Reject));
    let sent = sent.lock().unwrap();
    assert!(sent[4..].iter().all(|(path, _)| path == "/auth/v2/preauth"), "{sent:?}");
}

#[test]
fn numbers_not_on_the_menu_end_the_dialogue_after_max_rounds() {
    let dir = TempDir::new("duo-menu-rounds");
    let two = r#"{"result":"auth","devices":[
        {"device":"DP1","capabilities":["push"],"display_name":"iOS (XXX-XXX-1111)"}]}"#;
    let (engine, sent) = duo(&dir, "auto", &[("max_rounds", "2")], vec![ok(two), ok(two), ok(two)]);
    let menu = ask(&engine);
    let again = answer(&engine, &menu.challenge_state.unwrap(), "7");
    assert_eq!(again.outcome, Some(Outcome::Challenge), "{again:?}");
    let ended = answer(&engine, &again.challenge_state.unwrap(), "7");
    assert_eq!(
        (ended.outcome, ended.tally()),
        (Some(Outcome::Reject), Tally::Reject { cause: Cause::BadState, locks: false }),
        "the second number not on the menu ends it"
    );
    assert!(sent.lock().unwrap().iter().all(|(path, _)| path == "/auth/v2/preauth"));

    // A number on the menu after a wrong one opens its method, with rounds of its own.
    let (engine, _sent) = duo(&dir, "auto", &[("max_rounds", "2")], vec![ok(two), ok(two), ok(two)]);
    let menu = ask(&engine);
    let again = answer(&engine, &menu.challenge_state.unwrap(), "7");
    let passcode = answer(&engine, &again.challenge_state.unwrap(), "2");
    assert_eq!(passcode.outcome, Some(Outcome::Challenge), "2. A passcode: asked for it {passcode:?}");
    assert_eq!(passcode.reply_messages, vec!["Enter OTP:".to_string()]);
}

/// A Duo API that holds every call until the test lets it go, then answers
/// from a script, recording the calls; shared by the test and the engine.
#[derive(Clone)]
struct Held(Arc<HeldCalls>);

struct HeldCalls {
    answers: Mutex<Vec<Result<Answer, CallError>>>,
    gate: Mutex<std::sync::mpsc::Receiver<()>>,
    sent: Sent,
}

impl Held {
    fn new(answers: Vec<Result<Answer, CallError>>) -> (Held, std::sync::mpsc::Sender<()>) {
        let (release, gate) = std::sync::mpsc::channel();
        let calls = HeldCalls { answers: Mutex::new(answers), gate: Mutex::new(gate), sent: Sent::default() };
        (Held(Arc::new(calls)), release)
    }

    fn paths(&self) -> Vec<String> {
        self.0.sent.lock().unwrap().iter().map(|(p, _)| p.clone()).collect()
    }
}

impl DuoApi for Held {
    fn call(&self, _method: &str, path: &str, params: &[(&str, &str)]) -> Result<Answer, CallError> {
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.0.sent.lock().unwrap().push((path.to_string(), params));
        let _ = self.0.gate.lock().unwrap().recv();
        self.0.answers.lock().unwrap().remove(0)
    }
}

/// Two servers of a farm (`state_store = redis`), `store` their shared store.
fn farm_of_two(
    dir: &TempDir,
    mode: &str,
    apis: [Held; 2],
    store: &super::joining::farm::testing::Logins,
) -> Vec<Arc<DuoEngine>> {
    let mut raw = raw_config(dir.path(), mode);
    raw.backend = Some("duo".into());
    raw.state_store = Some("redis".into());
    raw.duo.api_host = Some("api-test.duosecurity.com".into());
    raw.duo.integration_key = Some("DIKEY".into());
    raw.duo.secret_key = Some("skey".into());
    raw.duo.wait = 5;
    raw.duo.poll_interval = 1;
    let cfg = Config::from_raw(&raw).unwrap();
    apis.into_iter()
        .map(|api| {
            let clock = Arc::new(crate::clock::FixedClock::new(1_700_000_000));
            let engine = DuoEngine::with_api("mfa", cfg.clone(), clock, Box::new(api)).unwrap();
            Arc::new(engine.in_farm(Box::new(store.clone())))
        })
        .collect()
}

fn in_thread(engine: &Arc<DuoEngine>, password: &'static str) -> std::thread::JoinHandle<AuthenticateOutput> {
    let engine = engine.clone();
    std::thread::spawn(move || login(&engine, password, None))
}

#[test]
fn a_passcode_resent_to_the_other_server_gets_the_first_servers_answer() {
    let dir = TempDir::new("duo-farm-passcode");
    let store = super::joining::farm::testing::Logins::default();
    let (a, release_a) = Held::new(vec![ok(AUTH), ok(r#"{"result":"allow","status":"allow"}"#)]);
    let (b, _) = Held::new(vec![]);
    let servers = farm_of_two(&dir, "otp", [a.clone(), b.clone()], &store);
    let first = in_thread(&servers[0], "123456");
    while a.paths().is_empty() {
        std::thread::yield_now();
    }
    // A holds the login (claimed, Duo's answer not in yet): B's re-send joins it.
    assert_eq!(store.0.lock().unwrap().len(), 1);
    let second = in_thread(&servers[1], "123456");
    std::thread::sleep(std::time::Duration::from_millis(300));
    release_a.send(()).unwrap();
    release_a.send(()).unwrap();
    assert_eq!(first.join().unwrap().outcome, Some(Outcome::Ok));
    let joined = second.join().unwrap();
    assert_eq!(joined.outcome, Some(Outcome::Ok), "the re-send gets the same answer");
    assert!(b.paths().is_empty(), "the passcode went to Duo once, from A");
    let log: Vec<&str> = joined.log.iter().map(|l| l.text.as_str()).collect();
    assert!(log.iter().any(|l| l.contains("on another server: joining it")), "{log:?}");

    // What the store holds, changed by someone with write access to it only: refused.
    for value in store.0.lock().unwrap().values_mut() {
        let last = value.len() - 1;
        value[last] ^= 1;
    }
    let forged = login(&servers[1], "123456", None);
    assert_eq!(forged.outcome, Some(Outcome::Fail));
    assert_eq!(forged.reply_messages, [servers[1].config().messages.internal.clone()]);
    assert!(b.paths().is_empty());
}

#[test]
fn a_push_resent_to_the_other_server_polls_the_first_push() {
    let dir = TempDir::new("duo-farm-push");
    let store = super::joining::farm::testing::Logins::default();
    let waiting = || ok(r#"{"result":"waiting","status":"pushed"}"#);
    let denied = || ok(r#"{"result":"deny","status":"deny"}"#);
    let (a, release_a) = Held::new(vec![ok(AUTH), ok(r#"{"txid":"tx-1"}"#), waiting(), denied()]);
    let (b, release_b) = Held::new(vec![denied()]);
    let servers = farm_of_two(&dir, "push", [a.clone(), b.clone()], &store);
    let first = in_thread(&servers[0], "pw");
    release_a.send(()).unwrap();
    release_a.send(()).unwrap();
    // The txid published: B's re-send polls that push, sending none of its own.
    while store.0.lock().unwrap().values().all(Vec::is_empty) {
        std::thread::yield_now();
    }
    release_b.send(()).unwrap();
    let joined = login(&servers[1], "pw", None);
    assert_eq!(joined.outcome, Some(Outcome::Reject));
    assert_eq!(joined.reply_messages, [servers[1].config().messages.push_denied.clone()]);
    let sent = b.0.sent.lock().unwrap().clone();
    assert_eq!(sent, [("/auth/v2/auth_status".to_string(), vec![("txid".to_string(), "tx-1".to_string())])]);
    // A's next poll is answered the same: both Reject.
    drop(release_a);
    assert_eq!(first.join().unwrap().outcome, Some(Outcome::Reject));
    assert_eq!(a.paths().iter().filter(|p| *p == "/auth/v2/auth").count(), 1, "one push");
}

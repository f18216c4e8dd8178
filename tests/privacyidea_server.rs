//! Checks the privacyIDEA test server itself (tests/common/privacyidea.rs and
//! tests/privacyidea/): direct HTTP calls to a real privacyIDEA 3.14 for every case the
//! privacyidea backend's tests rely on. With RLM_MFA_PRIVACYIDEA_RECORD=FILE the
//! exchanges are written to FILE.
//!
//! Not run by scripts/test.sh (the same cases run through FreeRADIUS in
//! tests/privacyidea.rs); run it after changing the harness:
//! `RLM_MFA_REQUIRE_PRIVACYIDEA=1 cargo test --release --test privacyidea_server -- --ignored`.

mod common;
#[path = "common/privacyidea.rs"]
mod privacyidea;

use std::time::{Duration, Instant};

use privacyidea::{Answer, PrivacyIdea, RFC_HOTP, RFC_KEY_HEX};

fn check(pi: &PrivacyIdea, case: &str, form: &[(&str, &str)]) -> Answer {
    let answer = pi.validate_check(form);
    let request: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
    privacyidea::record(case, &format!("POST /validate/check {}", request.join("&")), &answer);
    answer
}

fn poll(pi: &PrivacyIdea, case: &str, transaction_id: &str) -> Answer {
    let answer = pi.poll_transaction(transaction_id);
    privacyidea::record(case, &format!("GET /validate/polltransaction?transaction_id={transaction_id}"), &answer);
    answer
}

fn accepted(answer: &Answer) -> bool {
    answer.status == 200 && answer.value() == true && answer.authentication() == Some("ACCEPT")
}

fn rejected(answer: &Answer) -> bool {
    answer.status == 200 && answer.value() == false && answer.authentication() == Some("REJECT")
}

#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn hotp_accepts_the_right_code_once_and_rejects_a_wrong_one() {
    let pi = require_privacyidea!();
    let token = pi.enroll_hotp("alice", "corp", RFC_KEY_HEX, None);
    let ok = check(&pi, "HOTP: right code", &[("user", "alice"), ("pass", RFC_HOTP[0])]);
    assert!(accepted(&ok), "{ok:?}");
    assert_eq!(ok.detail()["serial"], token.serial.as_str());
    let replay = check(&pi, "HOTP: the same code again", &[("user", "alice"), ("pass", RFC_HOTP[0])]);
    assert!(rejected(&replay), "{replay:?}");
    let wrong = check(&pi, "HOTP: wrong code", &[("user", "alice"), ("pass", "000000")]);
    assert!(rejected(&wrong), "{wrong:?}");
    // The realm given explicitly is the default one.
    let next =
        check(&pi, "HOTP: next code, realm given", &[("user", "alice"), ("realm", "corp"), ("pass", RFC_HOTP[1])]);
    assert!(accepted(&next), "{next:?}");
}

#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn pin_and_otp_in_one_field_and_totp() {
    let pi = require_privacyidea!();
    pi.enroll_hotp("bob", "corp", RFC_KEY_HEX, Some("1234"));
    let ok = check(&pi, "PIN+OTP: right PIN and code", &[("user", "bob"), ("pass", &format!("1234{}", RFC_HOTP[0]))]);
    assert!(accepted(&ok), "{ok:?}");
    let wrong_pin = check(&pi, "PIN+OTP: wrong PIN", &[("user", "bob"), ("pass", &format!("9999{}", RFC_HOTP[1]))]);
    assert!(rejected(&wrong_pin), "{wrong_pin:?}");

    pi.enroll_totp("dave", "corp", RFC_KEY_HEX, None);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let code =
        mfa_core::factor::otp::hotp_code(b"12345678901234567890", now / 30, 6, mfa_core::factor::otp::Algorithm::Sha1);
    let totp = check(&pi, "TOTP: current code", &[("user", "dave"), ("pass", &code)]);
    assert!(accepted(&totp), "{totp:?}");
}

#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn hotp_by_challenge_response_when_the_policy_says_so() {
    let pi = require_privacyidea!();
    pi.enroll_hotp("carol", "corp", RFC_KEY_HEX, Some("4321"));
    pi.set_policy("hotp-challenge", "authentication", "challenge_response=hotp", &["realm=corp"]);
    let challenge = check(&pi, "HOTP challenge-response: the PIN alone", &[("user", "carol"), ("pass", "4321")]);
    assert_eq!(challenge.authentication(), Some("CHALLENGE"), "{challenge:?}");
    assert_eq!(challenge.detail()["multi_challenge"][0]["type"], "hotp");
    let txid = challenge.transaction_id().to_string();
    let answer = check(
        &pi,
        "HOTP challenge-response: the code with the transaction_id",
        &[("user", "carol"), ("transaction_id", &txid), ("pass", RFC_HOTP[0])],
    );
    assert!(accepted(&answer), "{answer:?}");
    // Without the policy the PIN alone is just a wrong password.
    pi.delete_policy("hotp-challenge");
    let plain = check(&pi, "HOTP without challenge_response: the PIN alone", &[("user", "carol"), ("pass", "4321")]);
    assert!(rejected(&plain), "{plain:?}");
}

/// E-mail (SMTP sink) and SMS (HTTP sink): a challenge, the code read from the sink.
#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn email_and_sms_codes_arrive_in_the_sinks_and_answer_the_challenge() {
    let pi = require_privacyidea!();
    for (user, kind) in [("carol", "email"), ("dave", "sms")] {
        let token =
            if kind == "email" { pi.enroll_email(user, "corp", None) } else { pi.enroll_sms(user, "corp", None) };
        let challenge = check(&pi, &format!("{kind}: trigger with the (empty) PIN"), &[("user", user), ("pass", "")]);
        assert_eq!(challenge.authentication(), Some("CHALLENGE"), "{challenge:?}");
        let first = &challenge.detail()["multi_challenge"][0];
        assert_eq!(first["type"], kind);
        assert_eq!(first["serial"], token.serial.as_str());
        assert_eq!(first["client_mode"], "interactive");
        let txid = challenge.transaction_id().to_string();
        let code = pi.read_sent_code(user);
        let stranger = check(
            &pi,
            &format!("{kind}: the sent code with an unknown transaction_id"),
            &[("user", user), ("transaction_id", "12345678901234567890"), ("pass", &code)],
        );
        assert!(rejected(&stranger), "{stranger:?}");
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let bad = check(
            &pi,
            &format!("{kind}: wrong code with the transaction_id"),
            &[("user", user), ("transaction_id", &txid), ("pass", wrong)],
        );
        assert!(rejected(&bad), "{bad:?}");
        let good = check(
            &pi,
            &format!("{kind}: the sent code with the transaction_id"),
            &[("user", user), ("transaction_id", &txid), ("pass", &code)],
        );
        assert!(accepted(&good), "{good:?}");
    }
}

/// Push: triggered by the PIN, polled beside the phone's answer, finalized with pass="".
#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn push_accepted_on_the_phone_is_seen_by_polltransaction_and_finalized() {
    let pi = require_privacyidea!();
    let token = pi.enroll_push("erin", "corp", Some("push-pin"));
    let challenge = check(&pi, "push: trigger with the PIN", &[("user", "erin"), ("pass", "push-pin")]);
    assert_eq!(challenge.authentication(), Some("CHALLENGE"), "{challenge:?}");
    assert_eq!(challenge.detail()["multi_challenge"][0]["client_mode"], "poll");
    assert_eq!(challenge.detail()["preferred_client_mode"], "poll");
    let txid = challenge.transaction_id().to_string();
    let pending = poll(&pi, "push: polltransaction before the answer", &txid);
    assert_eq!(pending.value(), false, "{pending:?}");
    assert_eq!(pending.detail()["challenge_status"], "pending");
    let early =
        check(&pi, "push: finalize before the answer", &[("user", "erin"), ("transaction_id", &txid), ("pass", "")]);
    assert!(rejected(&early), "{early:?}");

    // A client polls while the phone answers: the server serves both at once.
    let answered = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let started = Instant::now();
            loop {
                let answer = pi.poll_transaction(&txid);
                if answer.value() == true || started.elapsed() > Duration::from_secs(30) {
                    return answer;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let phone = pi.phone_answer(&token.serial, true);
        assert_eq!(phone["answered"], true, "{phone}");
        poller.join().unwrap()
    });
    assert_eq!(answered.value(), true, "{answered:?}");
    let seen = poll(&pi, "push: polltransaction after the phone accepted", &txid);
    assert_eq!(seen.detail()["challenge_status"], "accept");
    assert_eq!(seen.authentication(), Some("ACCEPT"));
    let done =
        check(&pi, "push: finalize after the answer", &[("user", "erin"), ("transaction_id", &txid), ("pass", "")]);
    assert!(accepted(&done), "{done:?}");
    let again =
        check(&pi, "push: finalize a second time", &[("user", "erin"), ("transaction_id", &txid), ("pass", "")]);
    assert!(rejected(&again), "{again:?}");
}

#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn push_declined_on_the_phone_is_declined() {
    let pi = require_privacyidea!();
    let token = pi.enroll_push("erin", "corp", Some("push-pin"));
    let challenge = check(&pi, "push (decline): trigger", &[("user", "erin"), ("pass", "push-pin")]);
    let txid = challenge.transaction_id().to_string();
    let phone = pi.phone_answer(&token.serial, false);
    assert_eq!(phone["answered"], true, "{phone}");
    let seen = poll(&pi, "push: polltransaction after the phone declined", &txid);
    assert_eq!(seen.value(), false, "{seen:?}");
    assert_eq!(seen.detail()["challenge_status"], "declined");
    assert_eq!(seen.authentication(), Some("DECLINED"));
    // Only polltransaction says DECLINED; the finalizing check is a plain REJECT in 3.14.
    let done =
        check(&pi, "push: finalize after a decline", &[("user", "erin"), ("transaction_id", &txid), ("pass", "")]);
    assert!(rejected(&done), "{done:?}");
}

/// Every challenge token of the user answers the PIN; one transaction_id covers them all.
#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn several_challenge_tokens_share_one_transaction() {
    let pi = require_privacyidea!();
    let mail = pi.enroll_email("bob", "corp", Some("both"));
    let push = pi.enroll_push("bob", "corp", Some("both"));
    let challenge = check(&pi, "e-mail and push: trigger both with the PIN", &[("user", "bob"), ("pass", "both")]);
    assert_eq!(challenge.authentication(), Some("CHALLENGE"), "{challenge:?}");
    let all = challenge.detail()["multi_challenge"].as_array().unwrap().clone();
    let serials: Vec<&str> = all.iter().map(|c| c["serial"].as_str().unwrap()).collect();
    assert!(serials.contains(&mail.serial.as_str()) && serials.contains(&push.serial.as_str()), "{all:?}");
    let txid = challenge.transaction_id().to_string();
    assert!(all.iter().all(|c| c["transaction_id"] == txid.as_str()), "{all:?}");
    let code = pi.read_sent_code("bob");
    let ok = check(
        &pi,
        "e-mail and push: answer with the e-mail code",
        &[("user", "bob"), ("transaction_id", &txid), ("pass", &code)],
    );
    assert!(accepted(&ok), "{ok:?}");
}

#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn unknown_user_and_wrong_realm() {
    let pi = require_privacyidea!();
    pi.enroll_hotp("alice", "corp", RFC_KEY_HEX, None);
    let unknown = check(&pi, "user not found", &[("user", "mallory"), ("pass", "123456")]);
    assert_eq!(unknown.status, 400, "{unknown:?}");
    assert_eq!(unknown.body["result"]["status"], false);
    assert_eq!(unknown.error_code(), Some(904));
    let elsewhere =
        check(&pi, "user not in the realm given", &[("user", "bob"), ("realm", "other"), ("pass", "123456")]);
    assert_eq!(elsewhere.error_code(), Some(904), "{elsewhere:?}");
    let no_realm =
        check(&pi, "realm that does not exist", &[("user", "alice"), ("realm", "nowhere"), ("pass", "123456")]);
    assert_eq!(no_realm.error_code(), Some(904), "{no_realm:?}");
    // Realm "other" has an alice of its own, without tokens: corp-alice's code does not open it.
    let other = check(
        &pi,
        "wrong realm: same login, no tokens there",
        &[("user", "alice"), ("realm", "other"), ("pass", RFC_HOTP[0])],
    );
    assert!(rejected(&other), "{other:?}");
    assert_eq!(other.detail()["message"], "The user has no tokens assigned");
    assert!(accepted(&check(&pi, "right realm", &[("user", "alice"), ("realm", "corp"), ("pass", RFC_HOTP[0])])));
}

#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn passthru_checks_the_user_store_password() {
    let pi = require_privacyidea!();
    pi.set_policy("passthru", "authentication", "passthru", &["realm=other"]);
    let ok =
        check(&pi, "passthru: user store password", &[("user", "oscar"), ("realm", "other"), ("pass", "pw-oscar")]);
    assert!(accepted(&ok), "{ok:?}");
    let bad = check(&pi, "passthru: wrong password", &[("user", "oscar"), ("realm", "other"), ("pass", "nope")]);
    assert!(rejected(&bad), "{bad:?}");
}

#[test]
#[ignore = "checks the privacyIDEA harness itself (tests/privacyidea.rs covers these cases through FreeRADIUS): cargo test --release --test privacyidea_server -- --ignored"]
fn a_stopped_server_refuses_connections() {
    let mut pi = require_privacyidea!();
    let url = format!("{}/validate/check", pi.url());
    pi.stop();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(5)))
            .build(),
    );
    let result = agent.post(&url).send_form([("user", "alice"), ("pass", "1")]);
    // No HTTP answer at all: a transport error, not a status.
    assert!(matches!(result, Err(ureq::Error::Io(_) | ureq::Error::ConnectionFailed)), "{result:?}");
}

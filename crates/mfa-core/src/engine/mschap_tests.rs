//! MS-CHAPv2 in otp mode: the code is the password the client hashed.

use super::*;
use crate::clock::FixedClock;
use crate::factor::otp;
use crate::testutil::TempDir;

use super::test_config::{raw_config, SEED, SEED_B32, T};

fn engine(dir: &TempDir) -> Engine {
    let tokens = format!(
        r#"{{"users": {{"alice": {{"tokens": [{{"serial": "T1", "type": "totp", "secret": "{SEED_B32}"}}]}}}}}}"#
    );
    dir.file("tokens.json", &tokens, 0o640);
    let raw = raw_config(dir.path(), "otp");
    Engine::new("mfa", Config::from_raw(&raw).unwrap(), Arc::new(FixedClock::new(T))).unwrap()
}

fn login(engine: &Engine, mschap2: MsChap2) -> AuthenticateOutput {
    engine.authenticate(AuthenticateInput {
        user_name: Some(b"alice"),
        mschap2: Some(mschap2),
        ..AuthenticateInput::default()
    })
}

#[test]
fn a_code_sent_by_mschapv2_is_accepted_once_with_success_and_mppe_keys() {
    let dir = TempDir::new("mschap");
    let engine = engine(&dir);
    let code = otp::hotp_code(SEED, T / 30, 6, otp::Algorithm::Sha1);
    let sent = MsChap2::as_client([1; 16], [2; 16], "alice", &code);
    let ok = login(&engine, sent.clone());
    assert_eq!(ok.outcome, Some(Outcome::Ok), "{:?}", ok.log);
    let names: Vec<&str> = ok.reply_attributes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "MS-CHAP2-Success",
            "MS-MPPE-Recv-Key",
            "MS-MPPE-Send-Key",
            "MS-MPPE-Encryption-Policy",
            "MS-MPPE-Encryption-Types"
        ]
    );
    let success = sent.success(&code);
    assert_eq!(ok.reply_attributes[0].1, format!("0x{}", data_encoding::HEXLOWER.encode(&success.mschap2_success)));

    let ident = sent.ident;
    let replay = login(&engine, sent);
    assert_eq!(replay.outcome, Some(Outcome::Reject), "the same code again");
    let names: Vec<&str> = replay.reply_attributes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["MS-CHAP-Error"], "no success, no keys");
    let error = &replay.reply_attributes[0].1;
    assert!(error.starts_with(&format!("\\{:03o}E=691 R=0 C=", ident)), "{error}");
    assert!(error.ends_with(" V=3 M=Authentication rejected"), "{error}");
    let wrong = login(&engine, MsChap2::as_client([1; 16], [3; 16], "alice", "000000"));
    assert_eq!(wrong.outcome, Some(Outcome::Reject));
    assert!(wrong.log.iter().any(|l| l.text.contains("wrong MS-CHAPv2 answer")), "{:?}", wrong.log);
}

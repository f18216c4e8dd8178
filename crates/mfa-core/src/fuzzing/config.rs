//! The configuration items (any strings and numbers FreeRADIUS may hand over)
//! and the `{name}` templates of messages and gateway bodies.

use std::time::Duration;

use super::input::Input;
use super::one_log_line;
use crate::channel::gateway::{GatewayConfig, HttpGateway};
use crate::channel::push::{HttpPushProvider, ProviderConfig};
use crate::channel::setup::SetupError;
use crate::config::{
    anchored, Config, Messages, Mode, RawConfig, RawGateway, RawLockout, RawPush, RawRealm, Section, Value,
    MAX_HOTP_LOOK_AHEAD, MAX_TOTP_WINDOW,
};
use crate::identity::realm::RealmPosition;
use crate::text::template::{render, render_json};

/// Marks the secrets of a configuration (Authorization values, a URL's password
/// and query), so that an error showing one is caught.
const MARK: &str = "MARKER";

pub fn config(data: &[u8]) {
    // The leak checks need marks that only this body puts in.
    let marks_are_ours = !data.windows(MARK.len()).any(|w| w.eq_ignore_ascii_case(MARK.as_bytes()));
    let raw = raw_config(&mut Input::new(data));
    let leaks = |text: &str| marks_are_ours && text.contains(MARK);
    let cfg = match Config::from_raw(&raw) {
        Ok(cfg) => cfg,
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with(&format!("invalid '{}': ", e.item)));
            assert!(!leaks(&text), "an error shows a secret: {text:?}");
            return;
        }
    };
    check_config(&cfg, &raw);
    // What the engine builds next from the checked values; its errors are logged too.
    let gateways = [&cfg.channels.sms, &cfg.channels.email].into_iter().flatten();
    for g in gateways {
        let built = HttpGateway::new(GatewayConfig {
            url: g.url.clone(),
            authorization: g.authorization.clone(),
            body_template: g.body.clone(),
            body_format: g.body_format,
            timeout: g.timeout,
            ca_file: None,
            ca_path: None,
        });
        if let Err(SetupError { message: text, .. }) = built {
            assert!(!leaks(&text) && one_log_line(&text), "{text:?}");
        }
    }
    let Some(push) = &cfg.push else { return };
    for url in &push.urls {
        let built = HttpPushProvider::new(ProviderConfig {
            base_url: url.clone(),
            authorization: push.authorization.clone(),
            timeout: push.timeout,
            ca_file: None,
            ca_path: None,
        });
        if let Err(SetupError { message: text, .. }) = built {
            assert!(!leaks(&text) && one_log_line(&text), "{text:?}");
        }
    }
}

/// What a checked configuration promises the engine.
fn check_config(cfg: &Config, raw: &RawConfig) {
    assert!(cfg.totp_window <= u64::from(MAX_TOTP_WINDOW));
    assert!(cfg.hotp_look_ahead <= u64::from(MAX_HOTP_LOOK_AHEAD));
    assert!(!cfg.tokens.as_os_str().is_empty() && !cfg.state.as_os_str().is_empty());
    assert!(!cfg.split.separator.chars().any(|c| c.is_ascii_digit()));
    assert!((6..=8).contains(&cfg.split.otp_length));
    assert!(matches!(cfg.realm.delimiter, '@' | '\\'));
    if raw.realm.position.is_none() {
        let prefix = cfg.realm.delimiter == '\\';
        assert_eq!(cfg.realm.position == RealmPosition::Prefix, prefix);
    }
    assert!(cfg.lockout.max_failures == 0 || cfg.lockout.duration > 0);
    if raw.auto_code_pattern.is_none() {
        assert_eq!(anchored(&cfg.auto_code_pattern), anchored("[0-9]{6,8}"));
    }
    assert_eq!(cfg.challenge.is_some(), cfg.mode.challenges() || cfg.push.is_some());
    if let Some(c) = &cfg.challenge {
        assert!((10..=3600).contains(&c.timeout) && (1..=10).contains(&c.max_rounds));
        assert!((4..=10).contains(&c.code_length) && (30..=3600).contains(&c.code_lifetime));
    }
    for g in [&cfg.channels.sms, &cfg.channels.email].into_iter().flatten() {
        assert!(g.url.starts_with("http://") || g.url.starts_with("https://"));
        assert!(g.message.contains("{code}") && !g.body.trim().is_empty());
        assert!((1..=30).contains(&g.timeout.as_secs()));
    }
    if matches!(cfg.mode, Mode::Push | Mode::OtpOrPush) {
        assert!(cfg.push.is_some());
    }
    if let Some(p) = &cfg.push {
        assert!(!p.urls.is_empty() && p.urls.len() <= 2);
        for url in &p.urls {
            assert!(url.starts_with("http://") || url.starts_with("https://"));
            assert!(!url.ends_with('/'));
        }
        assert!(p.authorization.as_deref() != Some(""));
        let longest = p.wait + 2 * p.timeout;
        let limit = Duration::from_secs(u64::from(raw.server_max_request_time));
        assert!(raw.server_max_request_time == 0 || longest < limit, "a push ends before the server gives up");
        assert!(p.poll_interval >= Duration::from_secs(1) && (1..=10_000).contains(&p.max_waiting));
    }
}

fn raw_config(input: &mut Input<'_>) -> RawConfig {
    let mut raw = RawConfig {
        mode: word(input, &["otp", "password+otp", "password-then-otp", "auto", "push"]),
        tokens: input.option_text(),
        state: input.option_text(),
        fsync: input.flag(),
        require_token: input.flag(),
        totp_window: input.number(),
        hotp_look_ahead: input.number(),
        separator: input.option_text(),
        otp_position: word(input, &["last", "first"]),
        otp_length: input.number(),
        user_suffix: input.option_text(),
        user_map: input.option_text(),
        realm: RawRealm {
            delimiter: word(input, &["@", "\\", "\\\\"]),
            split: word(input, &["first", "last"]),
            position: word(input, &["suffix", "prefix"]),
            strip: input.flag(),
        },
        lockout: RawLockout { max_failures: input.number(), duration: input.number() },
        state_key: input.option_text(),
        challenge_timeout: input.number(),
        max_rounds: input.number(),
        code_length: input.number(),
        code_lifetime: input.number(),
        sms: raw_gateway(input),
        email: raw_gateway(input),
        push: raw_push(input),
        server_max_request_time: input.number(),
        auto_code_pattern: input.option_text(),
        ignore_case: input.flag(),
        ..RawConfig::default()
    };
    // One of the messages, chosen by the input (they are all checked alike).
    if let Some(text) = input.option_text() {
        let mut values = Vec::new();
        raw.messages.to_values(&mut values);
        let which = usize::from(input.byte()) % values.len();
        values[which] = Value::Text(Some(text));
        raw.messages = Messages::from_values(&mut values.into_iter());
    }
    raw
}

/// Mostly one of the words an item expects (in any case, maybe padded), sometimes anything.
fn word(input: &mut Input<'_>, words: &[&str]) -> Option<String> {
    match input.byte() {
        0..=63 => None,
        b @ 64..=191 => {
            let w = words[usize::from(b) % words.len()];
            Some(if b & 1 == 0 { w.to_ascii_uppercase() } else { format!(" {w} ") })
        }
        _ => Some(input.text()),
    }
}

fn raw_gateway(input: &mut Input<'_>) -> RawGateway {
    RawGateway {
        url: url(input),
        authorization: authorization(input),
        body: input.option_text(),
        body_format: word(input, &["json", "form"]),
        username: input.option_text(),
        password: input.option_text(),
        message: input.option_text(),
        timeout: input.number(),
        // Not fuzzed: they name files to read.
        ca_file: None,
        ca_path: None,
    }
}

fn raw_push(input: &mut Input<'_>) -> RawPush {
    RawPush {
        url: url(input),
        secondary_url: url(input),
        authorization: authorization(input),
        timeout: input.number(),
        skip_failing: input.number(),
        poll_interval: input.number(),
        wait: input.number(),
        max_waiting: input.number(),
        failmode: word(input, &["secure", "safe"]),
        message: input.option_text().unwrap_or_default(),
        approval: word(input, &["wait", "challenge"]),
        when_busy: word(input, &["challenge", "reject"]),
        // Not fuzzed: they name files to read.
        ca_file: None,
        ca_path: None,
    }
}

/// A URL, perhaps with a password in its user information and a key in its query.
fn url(input: &mut Input<'_>) -> Option<String> {
    let choice = input.byte();
    if choice & 1 == 0 {
        return None;
    }
    let mut url = input.text();
    if choice & 2 != 0 {
        let at = url.find("://").map_or(0, |i| i + 3);
        url.insert_str(at, &format!("user:PASS-{MARK}@"));
    }
    if choice & 4 != 0 {
        url.push_str(&format!("?key=QUERY-{MARK}"));
    }
    Some(url)
}

fn authorization(input: &mut Input<'_>) -> Option<String> {
    match input.byte() % 3 {
        0 => None,
        1 => Some(input.text()),
        _ => Some(format!("{} Bearer AUTH-{MARK}", input.text())),
    }
}

/// Substitution, escaping and the gateway's promise about its body template.
/// First byte: how many values; then (name, value) pairs; the rest: the template.
pub fn template(data: &[u8]) {
    let mut input = Input::new(data);
    let count = input.byte() % 4;
    let values: Vec<(String, String)> = (0..count).map(|_| (input.text(), input.text())).collect();
    let values: Vec<(&str, &str)> = values.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let template = String::from_utf8_lossy(input.rest());
    let template = template.as_ref();

    // Values are inserted as given and never scanned again: rendering with
    // brace-free marks, then putting the values in place of the marks, is the same.
    let rendered = render(template, &values);
    if !template.contains(OPEN_MARK) {
        let marks: Vec<String> = (0..values.len()).map(|i| format!("{OPEN_MARK}{i}{CLOSE_MARK}")).collect();
        let marked: Vec<(&str, &str)> = values.iter().zip(&marks).map(|((n, _), m)| (*n, m.as_str())).collect();
        assert_eq!(fill_marks(&render(template, &marked), &values), rendered);
    }
    if !template.contains(['{', '}']) {
        assert_eq!(rendered, template, "without braces a template is its own text");
    }

    // Any value is one JSON string where the template writes "{name}".
    for (_, value) in &values {
        let body = render_json("[\"{v}\"]", &[("v", *value)]).expect("an escaped value is valid JSON");
        assert_eq!(serde_json::from_str::<Vec<String>>(&body).unwrap(), [value.to_string()]);
    }
    match render_json(template, &values) {
        Ok(body) => assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok()),
        Err(e) => check_json_error(&e),
    }

    // A body template the gateway accepts at start-up renders whatever the values.
    let gateway = HttpGateway::new(GatewayConfig {
        url: "http://127.0.0.1:9/send".into(),
        authorization: None,
        body_template: template.to_owned(),
        body_format: crate::channel::gateway::BodyFormat::Json,
        timeout: Duration::from_secs(5),
        ca_file: None,
        ca_path: None,
    });
    if gateway.is_ok() {
        let pick = |i: usize| values.get(i).map_or("", |(_, v)| *v);
        let real = [("destination", pick(0)), ("message", pick(1)), ("user", pick(2))];
        if let Err(e) = render_json(template, &real) {
            panic!("an accepted template fails at send time: {e}");
        }
    }
}

const OPEN_MARK: char = '\u{E000}';
const CLOSE_MARK: char = '\u{E001}';

/// Replaces each mark `OPEN index CLOSE` by that value, in one pass.
fn fill_marks(text: &str, values: &[(&str, &str)]) -> String {
    let mut pieces = text.split(OPEN_MARK);
    let mut out = pieces.next().unwrap_or_default().to_owned();
    for piece in pieces {
        let (index, rest) = piece.split_once(CLOSE_MARK).expect("a mark is closed");
        out.push_str(values[index.parse::<usize>().unwrap()].1);
        out.push_str(rest);
    }
    out
}

/// A template error names the problem and where, and never shows a value (the
/// message holds a code): it is made of fixed words and two numbers only.
fn check_json_error(error: &str) {
    let digits = |s: &str| s.trim_start_matches(|c: char| c.is_ascii_digit()).len() < s.len();
    let skip_digits = |s: &str| s.trim_start_matches(|c: char| c.is_ascii_digit()).to_owned();
    let rest = error.strip_prefix("the template does not give valid JSON (").expect("the fixed start");
    let rest = ["it ends too early", "syntax error", "invalid data"]
        .iter()
        .find_map(|what| rest.strip_prefix(what))
        .expect("one of the three problems");
    let rest = rest.strip_prefix(" at line ").expect("a line");
    assert!(digits(rest));
    let rest = skip_digits(rest);
    let rest = rest.strip_prefix(", column ").expect("a column");
    assert!(digits(rest));
    let rest = skip_digits(rest);
    let rest = rest.strip_prefix(" of the result)").expect("the fixed end");
    assert!(
        rest.is_empty() || rest == "; note that {{ and }} stand for one brace each",
        "nothing but the note follows: {error:?}"
    );
}

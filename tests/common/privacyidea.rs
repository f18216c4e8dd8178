//! A real privacyIDEA server for the privacyidea backend's tests: started per test on a
//! free loopback port in a directory of its own (tests/privacyidea/pi_server.py, run by
//! the venv scripts/privacyidea.sh installs), administered through
//! tests/privacyidea/pi_admin.py, stopped on Drop.
//!
//! Pull it into a test file with `#[path = "common/privacyidea.rs"] mod privacyidea;`.
//! Without the venv the tests say so and pass trivially, unless
//! `RLM_MFA_REQUIRE_PRIVACYIDEA=1`, where they fail. `RLM_MFA_PRIVACYIDEA_VENV` names
//! another venv.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Users the server knows (realm `corp`, the default), each with password `pw-<login>`,
/// an e-mail address and a mobile number. Realm `other` holds another `alice` (no
/// tokens) and `oscar`.
pub const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
/// RFC 4226's test key "12345678901234567890", hex, for enroll_hotp/enroll_totp.
pub const RFC_KEY_HEX: &str = "3132333435363738393031323334353637383930";
/// RFC 4226 appendix D: the HOTP codes of that key for counters 0, 1, 2...
pub const RFC_HOTP: [&str; 10] =
    ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];

/// The first start runs pi-manage's set-up (several seconds on a busy machine); later
/// starts copy it.
const START_LIMIT: Duration = Duration::from_secs(180);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, or None (and a note) when the server cannot run here.
pub fn venv_python() -> Option<PathBuf> {
    crate::common::venv::python("privacyidea", "privacyIDEA")
}

/// Starts a server, or returns from the test when there is no venv.
#[macro_export]
macro_rules! require_privacyidea {
    () => {
        match privacyidea::PrivacyIdea::start() {
            Some(server) => server,
            None => return,
        }
    };
}

fn unique_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base =
        std::env::var_os("RLM_MFA_TEST_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target/integration"));
    let dir = base.join(format!("pi-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A token as pi_admin.py reports it after enrolling.
#[derive(Debug, Clone)]
pub struct Token {
    pub serial: String,
    pub json: Value,
}

/// One HTTP exchange with the server: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// `result.value`.
    pub fn value(&self) -> &Value {
        &self.body["result"]["value"]
    }
    /// `result.authentication`: ACCEPT, REJECT, CHALLENGE or DECLINED.
    pub fn authentication(&self) -> Option<&str> {
        self.body["result"]["authentication"].as_str()
    }
    pub fn detail(&self) -> &Value {
        &self.body["detail"]
    }
    pub fn transaction_id(&self) -> &str {
        self.body["detail"]["transaction_id"].as_str().unwrap_or_else(|| panic!("no transaction_id in {self:?}"))
    }
    /// `result.error.code` when `result.status` is false.
    pub fn error_code(&self) -> Option<i64> {
        self.body["result"]["error"]["code"].as_i64()
    }
}

pub struct PrivacyIdea {
    pub dir: PathBuf,
    pub port: u16,
    url: String,
    python: PathBuf,
    child: Option<Child>,
}

impl PrivacyIdea {
    /// Starts a server with users and realms set up (see [`USERS`]); None without the venv.
    pub fn start() -> Option<PrivacyIdea> {
        let python = venv_python()?;
        let dir = unique_dir();
        let log = fs::File::create(dir.join("server.log")).unwrap();
        let mut child = Command::new(&python)
            .arg(repo().join("tests/privacyidea/pi_server.py"))
            .arg("--dir")
            .arg(&dir)
            .args(["--port", "0", "--exit-on-stdin-eof", "--template"])
            .arg(repo().join("target/privacyidea/template"))
            // Held open by the child handle: the server exits when this process is gone.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("cannot run the privacyIDEA venv's python");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = PrivacyIdea { dir, port: 0, url: String::new(), python, child: Some(child) };
        let line = rx.recv_timeout(START_LIMIT).unwrap_or_default();
        let Some(json) = line.strip_prefix("READY ") else {
            panic!("privacyIDEA did not start:\n{}", server.log_tail(60));
        };
        let ready: Value = serde_json::from_str(json).unwrap();
        server.port = ready["port"].as_u64().unwrap() as u16;
        server.url = ready["url"].as_str().unwrap().to_string();
        Some(server)
    }

    /// The base URL, e.g. `http://127.0.0.1:40123` (append `/validate/check`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (the "server down" case); the port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs one pi_admin.py subcommand and returns its JSON; panics when it fails.
    pub fn admin(&self, args: &[&str]) -> Value {
        let (ok, json) = self.try_admin(args);
        assert!(ok, "pi_admin.py {args:?} failed: {json}");
        json
    }

    /// Like [`PrivacyIdea::admin`], returning (succeeded, JSON) instead of panicking.
    pub fn try_admin(&self, args: &[&str]) -> (bool, Value) {
        let out = Command::new(&self.python)
            .arg(repo().join("tests/privacyidea/pi_admin.py"))
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let json = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
            panic!("pi_admin.py {args:?} printed no JSON:\n{text}\n{}", String::from_utf8_lossy(&out.stderr))
        });
        (out.status.success(), json)
    }

    fn enroll(&self, args: &[&str], pin: Option<&str>) -> Token {
        let mut args = args.to_vec();
        if let Some(pin) = pin {
            args.extend(["--pin", pin]);
        }
        let json = self.admin(&args);
        Token { serial: json["serial"].as_str().unwrap().to_string(), json }
    }

    /// An HOTP token (SHA1, 6 digits) with the key given in hex.
    pub fn enroll_hotp(&self, user: &str, realm: &str, key_hex: &str, pin: Option<&str>) -> Token {
        self.enroll(&["enroll-hotp", user, realm, key_hex], pin)
    }

    /// A TOTP token (SHA1, 6 digits, 30 s) with the key given in hex.
    pub fn enroll_totp(&self, user: &str, realm: &str, key_hex: &str, pin: Option<&str>) -> Token {
        self.enroll(&["enroll-totp", user, realm, key_hex], pin)
    }

    /// An e-mail token to the user's address; its codes land in the SMTP sink.
    pub fn enroll_email(&self, user: &str, realm: &str, pin: Option<&str>) -> Token {
        self.enroll(&["enroll-email", user, realm], pin)
    }

    /// An SMS token to the user's mobile number; its codes land in the HTTP SMS sink.
    pub fn enroll_sms(&self, user: &str, realm: &str, pin: Option<&str>) -> Token {
        self.enroll(&["enroll-sms", user, realm], pin)
    }

    /// A push token ("poll only"), its rollout completed by the simulated phone.
    pub fn enroll_push(&self, user: &str, realm: &str, pin: Option<&str>) -> Token {
        self.enroll(&["enroll-push", user, realm], pin)
    }

    /// The code in the newest e-mail or SMS sent to the user (of realm corp).
    pub fn read_sent_code(&self, user: &str) -> String {
        let json = self.admin(&["read-sent-code", user]);
        json["code"].as_str().unwrap_or_else(|| panic!("no code in {json}")).to_string()
    }

    /// The phone fetches the token's open challenges and accepts or declines the oldest.
    pub fn phone_answer(&self, serial: &str, accept: bool) -> Value {
        self.admin(&["phone-answer", serial, if accept { "accept" } else { "decline" }])
    }

    /// `set-policy NAME SCOPE ACTION [key=value...]`, e.g.
    /// `set_policy("cr", "authentication", "challenge_response=hotp", &["realm=corp"])`.
    pub fn set_policy(&self, name: &str, scope: &str, action: &str, extra: &[&str]) {
        let mut args = vec!["set-policy", name, scope, action];
        args.extend_from_slice(extra);
        self.admin(&args);
    }

    pub fn delete_policy(&self, name: &str) {
        self.admin(&["delete-policy", name]);
    }

    /// A system setting, e.g. `DefaultChallengeValidityTime`.
    pub fn set_config(&self, key: &str, value: &str) {
        self.admin(&["set-config", key, value]);
    }

    /// POST /validate/check with these form fields.
    pub fn validate_check(&self, form: &[(&str, &str)]) -> Answer {
        exchange(agent().post(format!("{}/validate/check", self.url)).send_form(form.iter().copied()))
    }

    /// GET /validate/polltransaction?transaction_id=...
    pub fn poll_transaction(&self, transaction_id: &str) -> Answer {
        exchange(
            agent()
                .get(format!("{}/validate/polltransaction", self.url))
                .query("transaction_id", transaction_id)
                .call(),
        )
    }

    /// The last lines of the server's output and of privacyIDEA's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "== server.log\n{}\n== privacyidea.log\n{}",
            tail(&read("server.log"), lines),
            tail(&read("privacyidea.log"), lines)
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for PrivacyIdea {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("privacyIDEA files kept in {}:\n{}", self.dir.display(), self.log_tail(40));
        }
    }
}

/// An agent that gives every status as an answer (privacyIDEA answers errors with JSON).
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).proxy(None).build())
}

/// Status and JSON body of a response, whatever its status.
fn exchange(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = result.unwrap_or_else(|e| panic!("no HTTP answer from privacyIDEA: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    Answer { status, body: serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON (HTTP {status}): {text}")) }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// With `RLM_MFA_PRIVACYIDEA_RECORD=FILE`, appends the exchange to FILE (markdown), so that
/// the exact bodies this privacyIDEA version returns can be read and copied into fakes.
pub fn record(case: &str, request: &str, answer: &Answer) {
    let Some(path) = std::env::var_os("RLM_MFA_PRIVACYIDEA_RECORD") else { return };
    let mut body = answer.body.clone();
    // The response signature is 512 hex digits that differ every time.
    if let Some(sig) = body.get_mut("signature") {
        *sig = Value::String("rsa_sha256_pss:<512 hex digits>".into());
    }
    let text = format!(
        "### {case}\n`{request}` → HTTP {}\n```json\n{}\n```\n\n",
        answer.status,
        serde_json::to_string(&body).unwrap()
    );
    // One write of a whole record: parallel tests append without interleaving.
    let mut file = fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
}

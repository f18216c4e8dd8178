//! The integration harness: a real FreeRADIUS with rlm_mfa loaded, on a free
//! loopback port, with a configuration directory generated per test, driven by
//! radclient.
//!
//! The module comes from `RLM_MFA_MODULE_DIR` (the directory holding
//! rlm_mfa.so), which scripts/test.sh sets after building it with the
//! `freeradius` feature. Without it the tests say so and pass trivially, unless
//! `RLM_MFA_REQUIRE_INTEGRATION=1` (CI), where they fail.
#![allow(dead_code)]

pub mod fake_gateway;
pub mod fake_privacyidea;
pub mod fake_push;
pub mod prom;
pub mod redis;
pub mod slow_relay;
pub mod tls_front;
pub mod venv;

use std::fs;
use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SECRET: &str = "testing123";
/// RFC 6238's SHA1 seed, "12345678901234567890", in base32.
pub const SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// The shipped configuration files.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// mfa-admin, a crate of the workspace: `RLM_MFA_ADMIN`, or the one cargo built
/// beside this test (`cargo build -p mfa-admin` with the same profile; scripts/test.sh does).
pub fn admin_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("RLM_MFA_ADMIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test> -> target/<profile>/mfa-admin
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>").join("mfa-admin");
    assert!(bin.is_file(), "{} is missing: run `cargo build -p mfa-admin` with this profile first", bin.display());
    bin
}

/// The directory holding rlm_mfa.so, or None (and a note) when integration tests cannot run.
pub fn module_dir() -> Option<PathBuf> {
    match std::env::var_os("RLM_MFA_MODULE_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            assert!(dir.join("rlm_mfa.so").is_file(), "RLM_MFA_MODULE_DIR={} holds no rlm_mfa.so", dir.display());
            Some(dir)
        }
        None => {
            if std::env::var("RLM_MFA_REQUIRE_INTEGRATION").as_deref() == Ok("1") {
                panic!("RLM_MFA_MODULE_DIR is not set: run scripts/test.sh");
            }
            eprintln!("note: RLM_MFA_MODULE_DIR is not set; integration test skipped (run scripts/test.sh)");
            None
        }
    }
}

/// Skips the test (returns) when the module is not built.
#[macro_export]
macro_rules! require_module {
    () => {
        match common::module_dir() {
            Some(dir) => dir,
            None => return,
        }
    };
}

fn unique_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base =
        std::env::var_os("RLM_MFA_TEST_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target/integration"));
    let dir = base.join(format!("{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    // Bound and released at once; FreeRADIUS binds it a moment later.
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// How the generated server is set up.
#[derive(Clone)]
pub struct Setup {
    /// Lines inside `mfa { }` (mode, realm { }, lockout { }...); tokens and state are added.
    pub module: String,
    /// The users file: first-factor passwords.
    pub users: Vec<(String, String)>,
    /// The token file's JSON.
    pub tokens: String,
    /// Whether `Auth-Type mfa` runs pap first (the password modes).
    pub first_factor: bool,
    /// Use freeradius-conf/mods-available/mfa and sites-available/mfa as shipped.
    pub shipped: bool,
    /// More files, relative to the configuration directory.
    pub files: Vec<(String, String)>,
    /// A virtual server of the test's own, instead of the generated one.
    pub site: Option<String>,
    /// RLIMIT_FSIZE of the server in bytes, with SIGXFSZ ignored: a write past it
    /// fails (EFBIG) as on a full disk, for the server's files only.
    pub file_size_limit: Option<u64>,
}

impl Setup {
    pub fn otp_mode(tokens: &str) -> Setup {
        Setup {
            // The detailed messages, which most tests read; tests of the default say `detailed_messages = no`.
            module: "mode = otp\ndetailed_messages = yes\n".into(),
            users: vec![],
            tokens: tokens.into(),
            first_factor: false,
            shipped: false,
            files: vec![],
            site: None,
            file_size_limit: None,
        }
    }

    pub fn password_otp_mode(tokens: &str, users: &[(&str, &str)]) -> Setup {
        Setup {
            module: "mode = password+otp\ndetailed_messages = yes\n".into(),
            users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
            tokens: tokens.into(),
            first_factor: true,
            shipped: false,
            files: vec![],
            site: None,
            file_size_limit: None,
        }
    }

    pub fn file(mut self, path: &str, text: &str) -> Setup {
        self.files.push((path.into(), text.into()));
        self
    }

    /// Adds lines to `mfa { }`, before the others: FreeRADIUS takes the first of a repeated item.
    /// A mode where the first factor runs before the module: password-then-otp, auto.
    pub fn challenge_mode(mode: &str, tokens: &str, users: &[(&str, &str)]) -> Setup {
        let mut setup = Setup::password_otp_mode(tokens, users);
        setup.module = format!("mode = {mode}\ndetailed_messages = yes\n");
        setup
    }

    pub fn with(mut self, lines: &str) -> Setup {
        self.module = format!("{lines}\n{}", self.module);
        self
    }
}

/// A token file with one TOTP token (SHA1, 6 digits, 30 s) per user, all on the RFC seed
/// unless given.
pub fn totp_tokens(users: &[&str]) -> String {
    let users: Vec<String> = users
        .iter()
        .map(|u| format!(r#""{u}": {{"tokens": [{{"serial": "T-{u}", "type": "totp", "secret": "{SEED_B32}"}}]}}"#))
        .collect();
    format!(r#"{{"users": {{{}}}}}"#, users.join(", "))
}

/// The RADIUS reply as radclient printed it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// "Access-Accept", "Access-Reject", or "timeout".
    pub code: String,
    pub attrs: Vec<(String, String)>,
    /// What radclient printed (stdout, stderr, exit status) when no reply came:
    /// a failing test shows it.
    pub unanswered: Option<String>,
}

impl Reply {
    pub fn is_accept(&self) -> bool {
        self.code == "Access-Accept"
    }
    pub fn is_reject(&self) -> bool {
        self.code == "Access-Reject"
    }
    pub fn is_challenge(&self) -> bool {
        self.code == "Access-Challenge"
    }
    /// The State of a challenge, as radclient prints it ("0x...").
    pub fn state(&self) -> &str {
        self.attr("State").unwrap_or_else(|| panic!("no State in {self:?}"))
    }
    /// Every Reply-Message, in order.
    pub fn messages(&self) -> Vec<&str> {
        self.attrs.iter().filter(|(n, _)| n == "Reply-Message").map(|(_, v)| v.as_str()).collect()
    }
    /// The lines of every Reply-Message (radclient prints a newline in one as `\n`).
    pub fn lines(&self) -> Vec<&str> {
        self.messages().into_iter().flat_map(|message| message.split("\\n")).collect()
    }
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn message(&self) -> Option<&str> {
        self.attr("Reply-Message")
    }
}

pub struct Server {
    pub dir: PathBuf,
    pub port: u16,
    module_dir: PathBuf,
    child: Option<Child>,
    file_size_limit: Option<u64>,
}

/// The minimal radiusd.conf shared with scripts/demo.sh and bench/.
const RADIUSD_CONF: &str = include_str!("../radiusd.conf.in");

impl Server {
    pub fn start(module_dir: &Path, setup: &Setup) -> Server {
        let dir = unique_dir("fr");
        let mut server = Server {
            dir,
            port: free_port(),
            module_dir: module_dir.to_path_buf(),
            child: None,
            file_size_limit: setup.file_size_limit,
        };
        server.write_config(setup);
        // The port was free when chosen, but the kernel may hand it to another
        // test's client before FreeRADIUS binds it: then start again on another.
        for attempt in 1.. {
            match server.try_spawn() {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("Address already in use") => {
                    server.port = free_port();
                    server.write_config(setup);
                }
                Err(log) => panic!("{log}"),
            }
        }
        server
    }

    pub fn tokens_path(&self) -> PathBuf {
        self.dir.join("mods-config/mfa/tokens.json")
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("db/mfa/state.jsonl")
    }

    fn write_config(&self, setup: &Setup) {
        let d = &self.dir;
        for sub in
            ["mods-enabled", "sites-enabled", "mods-config/mfa", "mods-config/files", "log", "run", "var", "db", "acct"]
        {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let conf = RADIUSD_CONF
            .replace("@DIR@", &d.display().to_string())
            .replace("@MODULE_DIR@", &self.module_dir.display().to_string());
        fs::write(d.join("radiusd.conf"), conf).unwrap();

        write_private(&self.tokens_path(), &setup.tokens);
        let users: String =
            setup.users.iter().map(|(u, p)| format!("\"{u}\"\tCleartext-Password := \"{p}\"\n")).collect();
        fs::write(d.join("mods-config/files/authorize"), users).unwrap();
        fs::write(d.join("mods-enabled/pap"), "pap {\n\tnormalise = yes\n}\n").unwrap();
        fs::write(
            d.join("mods-enabled/files"),
            "files {\n\tmoddir = ${modconfdir}/${.:instance}\n\tfilename = ${moddir}/authorize\n}\n",
        )
        .unwrap();
        fs::write(d.join("mods-enabled/always"), "always ok {\n\trcode = ok\n}\n").unwrap();

        let (module, site) = if setup.shipped {
            (
                fs::read_to_string(repo().join("freeradius-conf/mods-available/mfa")).unwrap(),
                fs::read_to_string(repo().join("freeradius-conf/sites-available/mfa")).unwrap(),
            )
        } else {
            (
                format!("mfa {{\n{}\n}}\n", setup.module),
                setup.site.clone().unwrap_or_else(|| generated_site(setup.first_factor)),
            )
        };
        fs::write(d.join("mods-enabled/mfa"), module).unwrap();
        for (path, text) in &setup.files {
            // Private, as a State key must be.
            fs::create_dir_all(d.join(path).parent().unwrap()).unwrap();
            fs::write(d.join(path), text).unwrap();
            fs::set_permissions(d.join(path), fs::Permissions::from_mode(0o600)).unwrap();
        }
        let site =
            site.replace("ipaddr = *", "ipaddr = 127.0.0.1").replace("port = 1812", &format!("port = {}", self.port));
        fs::write(d.join("sites-enabled/mfa"), site).unwrap();
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("{log}");
        }
    }

    /// Starts FreeRADIUS and waits until it is ready; why not, with its log's end.
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("log/debug.log");
        // After a restart the log already holds the first start's "Ready": look past it.
        let skip = fs::metadata(&log).map(|m| m.len() as usize).unwrap_or(0);
        let out = fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut command = match self.file_size_limit {
            None => Command::new("freeradius"),
            Some(bytes) => {
                // sh's ulimit -f counts 512-byte blocks; an ignored signal stays ignored across exec.
                let script = format!("trap '' XFSZ; ulimit -f {}; exec freeradius \"$@\"", bytes / 512);
                let mut sh = Command::new("sh");
                sh.args(["-c", &script, "freeradius"]);
                sh
            }
        };
        let child = command
            .args(["-f", "-xx", "-l", "stdout", "-d"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot run freeradius: install it with scripts/setup.sh");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let text = fs::read(&log)
                .map(|b| String::from_utf8_lossy(&b[skip.min(b.len())..]).into_owned())
                .unwrap_or_default();
            if text.contains("Ready to process requests") {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Err(format!("freeradius exited ({status}) during start-up:\n{}", tail(&text, 60)));
            }
            assert!(started.elapsed() < Duration::from_secs(20), "freeradius did not start:\n{}", tail(&text, 60));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server expecting it to refuse its configuration; returns its output.
    pub fn start_failing(module_dir: &Path, setup: &Setup) -> String {
        let dir = unique_dir("fr-bad");
        let server = Server {
            dir,
            port: free_port(),
            module_dir: module_dir.to_path_buf(),
            child: None,
            file_size_limit: setup.file_size_limit,
        };
        server.write_config(setup);
        server.check_config_fails()
    }

    /// Runs `freeradius -XC` over this directory, expecting failure; returns the output.
    pub fn check_config_fails(&self) -> String {
        let out = Command::new("freeradius").args(["-XC", "-d"]).arg(&self.dir).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "freeradius accepted the configuration:\n{}", tail(&text, 40));
        text
    }

    pub fn debug_log(&self) -> String {
        fs::read_to_string(self.dir.join("log/debug.log")).unwrap_or_default()
    }

    /// Sends one Access-Request with the given attribute lines (radclient syntax).
    ///
    /// `-r 2`, not `-r 1`: radclient 3.2.7 (Debian 13) gives up on a request once
    /// `timeout x (retries - tries)` seconds have passed since it was sent, counted
    /// in whole seconds, so with one try it may stop at the next tick of the clock,
    /// without the reply and with exit status 0. A second try gives the reply its
    /// whole timeout (and is sent only if none came by then).
    pub fn send(&self, attrs: &str) -> Reply {
        self.send_with(&["-r", "2", "-t", "15"], attrs)
    }

    /// Like [`Server::send`], with radclient's timeout and retry options given.
    pub fn send_with(&self, options: &[&str], attrs: &str) -> Reply {
        let mut child = Command::new("radclient")
            .arg("-x")
            .args(options)
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["auth", SECRET])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run radclient: install freeradius-utils with scripts/setup.sh");
        child.stdin.take().unwrap().write_all(attrs.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut reply = parse_radclient(&stdout);
        if reply.code == "timeout" {
            let stderr = String::from_utf8_lossy(&out.stderr);
            reply.unanswered = Some(format!("radclient: {}\n{stdout}{stderr}", out.status));
        }
        reply
    }

    /// Sends many Access-Requests at once (`parallel` in flight) and returns the
    /// (accepted, rejected, lost) counts of radclient's summary.
    pub fn send_many(&self, packets: &[String], parallel: usize) -> (u64, u64, u64) {
        let file = self.dir.join(format!("packets-{}.txt", now()));
        fs::write(&file, packets.join("\n")).unwrap();
        let out = Command::new("radclient")
            .args(["-q", "-s", "-r", "3", "-t", "5", "-p", &parallel.to_string(), "-f"])
            .arg(&file)
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["auth", SECRET])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let count = |label: &str| -> u64 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(label).map(|r| r.trim_start_matches([' ', ':', '\t'])))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no '{label}' in radclient's summary:\n{text}"))
        };
        (count("Accepted"), count("Rejected"), count("Lost"))
    }

    /// The answer to a challenge: the State sent back with the code or choice.
    pub fn answer(&self, user: &str, answer: &str, state: &str) -> Reply {
        self.send(&format!(
            "User-Name = \"{}\", User-Password = \"{}\", State = {state}\n",
            escape(user),
            escape(answer)
        ))
    }

    pub fn auth(&self, user: &str, password: &str) -> Reply {
        self.send(&format!("User-Name = \"{}\", User-Password = \"{}\"\n", escape(user), escape(password)))
    }

    /// SIGHUP: FreeRADIUS re-reads the configuration of HUP-safe modules.
    pub fn hup(&self) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
        assert!(status.success(), "kill -HUP {pid} failed");
    }

    /// The module configuration file of the generated directory.
    pub fn module_conf_path(&self) -> PathBuf {
        self.dir.join("mods-enabled/mfa")
    }

    /// kill -9, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// mfa-admin with this server's files: its token file, journal and module configuration.
    fn admin_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(admin_bin());
        command.arg("--tokens").arg(self.tokens_path()).arg("--state").arg(self.state_path());
        command.arg("--module").arg(self.module_conf_path()).args(args);
        command
    }

    /// Runs mfa-admin against this server's files.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        self.admin_command(args).output().unwrap()
    }

    /// Runs mfa-admin against this server's files with `input` on its standard input.
    pub fn admin_with_input(&self, args: &[&str], input: &str) -> std::process::Output {
        with_stdin(self.admin_command(args), input)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("server files kept in {}:\n{}", self.dir.display(), tail(&self.debug_log(), 80));
        }
    }
}

/// Runs mfa-admin on the token file `tokens` with `input` on its standard input.
pub fn admin_with_stdin(tokens: &Path, args: &[&str], input: &str) -> std::process::Output {
    let mut command = Command::new(admin_bin());
    command.arg("--tokens").arg(tokens).args(args);
    with_stdin(command, input)
}

/// Runs `command` with `input` on its standard input; its output.
fn with_stdin(mut command: Command, input: &str) -> std::process::Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Writes a file the module accepts as a token file (no access for others).
pub fn write_private(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o640)).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn generated_site(first_factor: bool) -> String {
    format!(
        r#"server mfa {{
listen {{
	type = auth
	ipaddr = *
	port = 1812
}}
authorize {{
	mfa
	files
	pap
}}
authenticate {{
	Auth-Type mfa {{
		{}
		mfa
	}}
	Auth-Type PAP {{
		pap
	}}
}}
post-auth {{
	update reply {{
		Filter-Id := "%{{%{{Stripped-User-Name}}:-%{{User-Name}}}}|%{{%{{Realm}}:-none}}"
	}}
	Post-Auth-Type REJECT {{
		ok
	}}
}}
}}
"#,
        // A request carrying a State answers our challenge: the first factor ran in the round before.
        if first_factor { "if (!&State) {\n\t\t\tpap\n\t\t}" } else { "" }
    )
}

/// Escapes a value for a double-quoted radclient string.
pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

fn parse_radclient(out: &str) -> Reply {
    let mut code = "timeout".to_string();
    let mut attrs = Vec::new();
    let mut in_reply = false;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Received ") {
            code = rest.split_whitespace().next().unwrap_or("").to_string();
            in_reply = true;
            continue;
        }
        if line.starts_with("Sent ") {
            in_reply = false;
            continue;
        }
        if in_reply {
            if let Some((name, value)) = line.trim().split_once(" = ") {
                attrs.push((name.to_string(), value.trim_matches('"').to_string()));
            }
        }
    }
    Reply { code, attrs, unanswered: None }
}

/// The counters' file (`stats { file }`) once it holds every line of `expected`
/// (the writer runs every `interval`), else the last text read, after 60 s: the
/// assertion then shows what differs.
pub fn wait_for_lines(path: &Path, expected: &[String]) -> String {
    let started = Instant::now();
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if expected.iter().all(|line| text.lines().any(|l| l == line)) || started.elapsed() > Duration::from_secs(60) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The TOTP code of the RFC seed (SHA1, 6 digits, 30 s) at `time`, computed by mfa-admin's
/// library so that the test does not trust the module to check itself.
pub fn totp_at(time: u64) -> String {
    mfa_core::factor::otp::hotp_code(b"12345678901234567890", time / 30, 6, mfa_core::factor::otp::Algorithm::Sha1)
}

/// The module looks at the token file at most once a second (crates/mfa-core/src/store/reload.rs).
pub fn wait_for_reload() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// Waits until at least `margin` seconds remain in the current 30 s step, so that a
/// test's codes do not straddle a step boundary.
pub fn settle_in_step(margin: u64) {
    loop {
        let left = 30 - now() % 30;
        if left >= margin {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

//! mfa-admin: enroll and remove tokens, inspect and repair rlm_mfa's state.
//!
//! Edits the token file (atomically, keeping its owner and mode) and appends to
//! the state journal that the running module shares, so no restart is needed.

use std::error::Error;
use std::fs::{self, DirBuilder};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

use mfa_core::clock::{Clock, SystemClock};
use mfa_core::factor::otp::{self, Algorithm};
use mfa_core::factor::verify::{self, Windows};
use mfa_core::identity::case;
use mfa_core::store::journal::{JournalOptions, StateJournal, TokenState};
use mfa_core::store::redis::RedisStore;
use mfa_core::store::state_store::{LocalStore, StateStore};

mod module_conf;
use mfa_core::store::tokens::{EditLock, Secret, Token, TokenDb, TokenKind, User, NEW_SECRET_BYTES};

const DEFAULT_TOKENS: &str = "/etc/freeradius/3.0/mods-config/mfa/tokens.json";
const DEFAULT_STATE: &str = "/var/lib/freeradius/mfa/state.jsonl";
/// Read when it exists: with `state_store = redis` there, the state is in Redis.
const DEFAULT_MODULE: &str = "/etc/freeradius/3.0/mods-enabled/mfa";

type Result<T> = std::result::Result<T, Box<dyn Error>>;

#[derive(Parser)]
#[command(name = "mfa-admin", version, about = "Manage rlm_mfa tokens and their state")]
struct Cli {
    /// Token file [env: MFA_TOKENS] [default: /etc/freeradius/3.0/mods-config/mfa/tokens.json]
    #[arg(long, global = true, value_name = "PATH")]
    tokens: Option<PathBuf>,
    /// State journal [env: MFA_STATE] [default: /var/lib/freeradius/mfa/state.jsonl]
    #[arg(long, global = true, value_name = "PATH")]
    state: Option<PathBuf>,
    /// The module's configuration: with `state_store = redis` in it, the state is in its Redis
    /// [env: MFA_MODULE] [default: /etc/freeradius/3.0/mods-enabled/mfa, when it exists]
    #[arg(long, global = true, value_name = "PATH")]
    module: Option<PathBuf>,
    /// Find users and their state ignoring case, as the module does with ignore_case = yes
    /// [env: MFA_IGNORE_CASE] [default: the module's ignore_case (--module), else no]
    #[arg(long, global = true, value_name = "yes|no", num_args = 0..=1, require_equals = true,
          default_missing_value = "yes", value_parser = parse_yes_no)]
    ignore_case: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add a token to a user; prints its serial, otpauth:// URI and QR code
    Enroll(EnrollArgs),
    /// Show users, their tokens (never the secrets) and their state
    List {
        /// Only this user
        user: Option<String>,
    },
    /// Remove a user (and the user's state), or one token with --serial
    Remove {
        user: String,
        #[arg(long)]
        serial: Option<String>,
    },
    /// Clear a user's failure count and lockout
    Unlock { user: String },
    /// Resynchronise an HOTP token from two consecutive codes
    Resync {
        user: String,
        code1: String,
        code2: String,
        #[arg(long)]
        serial: Option<String>,
        /// How many counters past the stored one to search
        #[arg(long, default_value_t = 10_000)]
        search: u64,
    },
    /// Verify a code as the module does; exit status 0 on a match, 1 otherwise
    Check(CheckArgs),
    /// Set or clear where codes are sent in the challenge modes (SMS number, e-mail address)
    Contact {
        user: String,
        /// Phone number for SMS, e.g. +4512345612; "" clears it
        #[arg(long)]
        sms: Option<String>,
        /// E-mail address; "" clears it
        #[arg(long)]
        email: Option<String>,
    },
    /// Set a user's groups, for `reply <Attribute> { from = "user.groups" }` rules; none clears them
    Groups { user: String, groups: Vec<String> },
    /// Copy the state journal (--state) into the module's Redis store (state_store = redis)
    MoveStateToRedis,
    /// Print the counters the module writes (its `stats { file }`); exit status 1 when the file is missing
    Stats {
        /// Print the file as it is (the Prometheus text format)
        #[arg(long)]
        prometheus: bool,
        /// Read this file instead of the one the module's configuration (--module) names
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Print the current code of a token (for demos and tests on this server)
    Code {
        user: String,
        #[arg(long)]
        serial: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Totp,
    Hotp,
}

#[derive(Args)]
struct EnrollArgs {
    user: String,
    #[arg(long = "type", value_enum, default_value_t = Kind::Totp)]
    kind: Kind,
    #[arg(long, default_value = "SHA1", value_parser = parse_algorithm)]
    algorithm: Algorithm,
    #[arg(long, default_value_t = 6)]
    digits: u32,
    /// TOTP time step in seconds [default: 30]
    #[arg(long)]
    period: Option<u64>,
    /// Read a base32 secret from FILE ("-": standard input) instead of making 20 random bytes
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Refused: a secret on the command line is seen in `ps` and shell history (use --secret-file)
    #[arg(long, value_name = "BASE32", hide = true)]
    secret: Option<String>,
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Issuer shown by the authenticator app
    #[arg(long, default_value = "rlm_mfa")]
    issuer: String,
    /// Do not print the QR code
    #[arg(long)]
    no_qr: bool,
}

#[derive(Args)]
struct CheckArgs {
    user: String,
    code: String,
    /// TOTP steps accepted either side of the current one [default: the module's totp_window]
    #[arg(long)]
    window: Option<u64>,
    /// HOTP counters accepted past the stored one [default: the module's hotp_look_ahead]
    #[arg(long)]
    look_ahead: Option<u64>,
    /// Record the matching step or counter, so the code cannot be used again
    #[arg(long)]
    consume: bool,
}

/// Where the files are, after options, environment and defaults.
struct Paths {
    tokens: PathBuf,
    state: PathBuf,
    /// The module's ignore_case (identity::case is the rule both follow).
    ignore_case: bool,
    /// The module's configuration, read for its state store.
    module: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let module = cli
        .module
        .or_else(|| std::env::var_os("MFA_MODULE").filter(|v| !v.is_empty()).map(PathBuf::from))
        .or_else(|| Some(PathBuf::from(DEFAULT_MODULE)).filter(|p| p.is_file()));
    let paths = match resolve_ignore_case(cli.ignore_case, module.as_deref()) {
        Ok(ignore_case) => Paths {
            tokens: resolve_path(cli.tokens, "MFA_TOKENS", DEFAULT_TOKENS),
            state: resolve_path(cli.state, "MFA_STATE", DEFAULT_STATE),
            ignore_case,
            module,
        },
        Err(e) => {
            eprintln!("mfa-admin: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli.command, &paths) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mfa-admin: {e}");
            ExitCode::from(2)
        }
    }
}

/// Option first, then the environment (clap's `env` feature is not enabled), then the default.
fn resolve_path(option: Option<PathBuf>, env: &str, default: &str) -> PathBuf {
    option
        .or_else(|| std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(default))
}

/// yes, true, on or 1; no, false, off or 0.
fn parse_yes_no(value: &str) -> std::result::Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        other => Err(format!("\"{other}\" is not yes or no")),
    }
}

/// The option first, then MFA_IGNORE_CASE, then the module's own `ignore_case`:
/// by default mfa-admin follows the rule of the module whose state it changes,
/// or `unlock Alice` would lift a lock the module never sees (it locked "alice").
fn resolve_ignore_case(option: Option<bool>, module: Option<&Path>) -> Result<bool> {
    if let Some(value) = option {
        return Ok(value);
    }
    if let Some(value) = std::env::var("MFA_IGNORE_CASE").ok().filter(|v| !v.trim().is_empty()) {
        return parse_yes_no(&value).map_err(|e| format!("MFA_IGNORE_CASE: {e}").into());
    }
    match module {
        Some(path) => Ok(module_conf::ignore_case(path)?),
        None => Ok(false),
    }
}

fn run(command: Command, paths: &Paths) -> Result<ExitCode> {
    match command {
        Command::Enroll(args) => enroll(paths, &args),
        Command::List { user } => list(paths, user.as_deref()),
        Command::Remove { user, serial } => remove(paths, &user, serial.as_deref()),
        Command::Unlock { user } => unlock(paths, &user),
        Command::Resync { user, code1, code2, serial, search } => {
            resync(paths, &user, &code1, &code2, serial.as_deref(), search)
        }
        Command::Check(args) => check(paths, &args),
        Command::Contact { user, sms, email } => contact(paths, &user, sms, email),
        Command::Code { user, serial } => print_code(paths, &user, serial.as_deref()),
        Command::Groups { user, groups } => set_groups(paths, &user, groups),
        Command::MoveStateToRedis => move_state_to_redis(paths),
        Command::Stats { prometheus, file } => stats(paths, prometheus, file),
    }
}

/// The counters file: --file, else the module's `stats { file }`.
fn stats(paths: &Paths, prometheus: bool, file: Option<PathBuf>) -> Result<ExitCode> {
    let path = match file {
        Some(path) => path,
        None => {
            let module = paths.module.as_deref().ok_or("no module configuration (--module) to find stats.file in")?;
            module_conf::stats_file(module)?
                .ok_or_else(|| format!("{} sets no stats {{ file }}: the counters are off", module.display()))?
        }
    };
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("mfa-admin: {} does not exist: is the module running with stats {{ file }} set?", path.display());
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
    };
    if prometheus {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", path.display());
    let now = SystemClock.now();
    // The histograms' buckets are for Prometheus; their count and sum are shown.
    for (name, labels, value) in text.lines().filter_map(sample).filter(|(name, _, _)| !name.ends_with("_bucket")) {
        if name == "stats_written_timestamp_seconds" {
            let age = value.parse::<u64>().map(|at| now.saturating_sub(at));
            let age = age.map(|a| format!("{a} s ago")).unwrap_or_else(|_| value.to_string());
            println!("  {:<36} {age}", "written");
        } else {
            let name = name.strip_suffix("_total").unwrap_or(name);
            let what = if labels.is_empty() { name.to_string() } else { format!("{name} {labels}") };
            println!("  {what:<36} {value:>10}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One sample line of the file: the name without `rlm_mfa_`, the labels other than
/// `module` (`cause=wrong_code`), the value.
fn sample(line: &str) -> Option<(&str, String, &str)> {
    let line = line.strip_prefix("rlm_mfa_")?;
    let (series, value) = line.rsplit_once(' ')?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or(rest)),
        None => (series, ""),
    };
    let labels: Vec<String> = labels
        .split(',')
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| *k != "module")
        .map(|(k, v)| format!("{k}={}", v.trim_matches('"')))
        .collect();
    Some((name, labels.join(","), value))
}

fn set_groups(paths: &Paths, user: &str, groups: Vec<String>) -> Result<ExitCode> {
    let _lock = edit_lock(paths)?;
    let mut db = load_or_create(&paths.tokens)?;
    let user = &entry_for_write(&db, user, paths.ignore_case)?;
    db.set_groups(user, groups)?;
    db.save(&paths.tokens)?;
    let groups = db.user(user).map(|u| u.groups.join(", ")).unwrap_or_default();
    println!("{user:?}: groups {}", if groups.is_empty() { "none" } else { &groups });
    Ok(ExitCode::SUCCESS)
}

fn contact(paths: &Paths, user: &str, sms: Option<String>, email: Option<String>) -> Result<ExitCode> {
    if sms.is_none() && email.is_none() {
        return Err("give --sms NUMBER and/or --email ADDRESS (\"\" clears one)".into());
    }
    let clear_empty = |v: Option<String>| v.map(|v| Some(v).filter(|v| !v.is_empty()));
    let _lock = edit_lock(paths)?;
    let mut db = load_or_create(&paths.tokens)?;
    let user = &entry_for_write(&db, user, paths.ignore_case)?;
    db.set_contacts(user, clear_empty(sms), clear_empty(email))?;
    db.save(&paths.tokens)?;
    match db.user(user) {
        Some(u) => println!(
            "{user:?}: sms {}, email {}",
            u.sms.as_deref().unwrap_or("none"),
            u.email.as_deref().unwrap_or("none")
        ),
        None => println!("{user:?} has no second factor left and was removed"),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_algorithm(name: &str) -> std::result::Result<Algorithm, String> {
    Algorithm::parse(name).ok_or_else(|| "expected SHA1, SHA256 or SHA512".to_string())
}

// ---------------------------------------------------------------------------
// Commands

fn enroll(paths: &Paths, args: &EnrollArgs) -> Result<ExitCode> {
    let kind = match (args.kind, args.period) {
        (Kind::Totp, period) => TokenKind::Totp { period: period.unwrap_or(30) },
        (Kind::Hotp, None) => TokenKind::Hotp,
        (Kind::Hotp, Some(_)) => return Err("--period applies only to TOTP tokens".into()),
    };
    if args.secret.is_some() {
        return Err("--secret puts the secret on the command line (seen in `ps` and shell history): \
                    give it in a file with --secret-file FILE, or on standard input with --secret-file -"
            .into());
    }
    let secret = match &args.secret_file {
        Some(file) => read_secret(file)?,
        None => Secret::generate(NEW_SECRET_BYTES)?,
    };
    let _lock = edit_lock(paths)?;
    let mut db = load_or_create(&paths.tokens)?;
    let name = entry_for_write(&db, &args.user, paths.ignore_case)?;
    let token = Token {
        serial: unused_serial(db.user(&name), &kind)?,
        kind,
        algorithm: args.algorithm,
        digits: args.digits,
        secret,
        description: args.description.clone(),
    };
    let serial = token.serial.clone();
    let uri = token.otpauth_uri(&name, &args.issuer);
    db.add_token(&name, token)?;
    db.save(&paths.tokens)?;

    println!("enrolled {serial} for {name:?} in {}", paths.tokens.display());
    println!("{uri}");
    if !args.no_qr {
        println!("{}", render_qr(&uri)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn list(paths: &Paths, only: Option<&str>) -> Result<ExitCode> {
    let db = TokenDb::load(&paths.tokens)?;
    let store = open_state(paths, false)?;
    let now = SystemClock.now();
    match only {
        Some(name) => {
            let who = find(&db, name, paths.ignore_case)?;
            print_user(who.entry, who.user, &who.state, store.as_deref(), now)?;
        }
        None => {
            for (name, user) in db.users() {
                let state = case::key(name, paths.ignore_case);
                print_user(name, user, &state, store.as_deref(), now)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(paths: &Paths, user: &str, serial: Option<&str>) -> Result<ExitCode> {
    let _lock = edit_lock(paths)?;
    let mut db = TokenDb::load(&paths.tokens)?;
    let (user, state) = {
        let who = find(&db, user, paths.ignore_case)?;
        (who.entry.to_owned(), who.state)
    };
    let user = user.as_str();
    match serial {
        Some(serial) => {
            db.remove_token(user, serial).ok_or_else(|| format!("user {user:?} has no token {serial:?}"))?;
            println!("removed token {serial} of {user:?}");
        }
        None => {
            let removed = db.remove_user(user).ok_or_else(|| no_such_user(user))?;
            println!("removed {user:?} and {} token(s)", removed.tokens.len());
        }
    }
    db.save(&paths.tokens)?;
    // A user removed whole (or by their last token) leaves no state behind, so
    // that a later user of the same name starts clean.
    if db.user(user).is_none() {
        if let Some(store) = open_state(paths, false)? {
            store.forget(&state)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unlock(paths: &Paths, user: &str) -> Result<ExitCode> {
    let Some(store) = open_state(paths, false)? else {
        println!("{user:?} has no state; nothing to unlock");
        return Ok(ExitCode::SUCCESS);
    };
    // Under the name the module keeps it (no token file needed: a lockout may outlive the entry).
    let state = case::key(user, paths.ignore_case);
    let before = store.current_lock(&state)?;
    store.reset_failures(&state)?;
    println!("unlocked {user:?} (had {} failure(s))", before.failures);
    Ok(ExitCode::SUCCESS)
}

fn resync(paths: &Paths, user: &str, code1: &str, code2: &str, serial: Option<&str>, search: u64) -> Result<ExitCode> {
    let db = TokenDb::load(&paths.tokens)?;
    let who = find(&db, user, paths.ignore_case)?;
    let (user, state) = (who.entry, who.state.as_str());
    let tokens = chosen_tokens(who.user, user, serial)?;
    let hotp: Vec<&Token> = tokens.into_iter().filter(|t| t.kind == TokenKind::Hotp).collect();
    if hotp.is_empty() {
        return Err(match serial {
            Some(serial) => {
                format!("token {serial} is not an HOTP token; only HOTP tokens need resync")
            }
            None => format!("{user:?} has no HOTP token; only HOTP tokens need resync"),
        }
        .into());
    }
    let store = open_state(paths, true)?.ok_or("no state store")?;
    store.current_lock(state)?; // catches up with the store, so that token() is current
    for token in hotp {
        let from = store.token(state, &token.serial).next_counter;
        let secret = token.secret.as_bytes();
        if let Some(next) = otp::hotp_resync(secret, token.algorithm, token.digits, from, search, code1, code2) {
            if !store.claim_hotp_counter(state, &token.serial, next)? {
                return Err(
                    format!("{} moved past counter {next} meanwhile: try again with new codes", token.serial).into()
                );
            }
            println!("resynchronised {}: next counter is now {next}", token.serial);
            return Ok(ExitCode::SUCCESS);
        }
    }
    println!("no HOTP token of {user:?} produced those two codes within {search} counters");
    Ok(ExitCode::from(1))
}

fn check(paths: &Paths, args: &CheckArgs) -> Result<ExitCode> {
    let db = TokenDb::load(&paths.tokens)?;
    let who = find(&db, &args.user, paths.ignore_case)?;
    let (user, name, state) = (who.user, who.entry, who.state.as_str());
    let store = open_state(paths, args.consume)?;
    let now = SystemClock.now();
    let code = args.code.trim();
    let windows = windows(paths, args)?;
    let lock = match &store {
        Some(store) => store.current_lock(state)?,
        None => Default::default(),
    };
    if lock.is_locked(now) {
        println!(
            "note: {name:?} is locked for {} more seconds; the module rejects every code until then",
            lock.locked_until - now
        );
    }

    for token in &user.tokens {
        let token_state = token_state(store.as_deref(), state, &token.serial);
        let Some(found) = verify::find(token, &token_state, code, now, windows) else {
            continue;
        };
        let what = match token.kind {
            TokenKind::Totp { .. } => format!("step {found}"),
            TokenKind::Hotp => format!("counter {found}"),
        };
        match store.as_deref().filter(|_| args.consume) {
            Some(store) => {
                // Claimed by the store, atomically: the module may have taken this
                // code in the meantime, and a code is good only once.
                let claimed = match token.kind {
                    TokenKind::Totp { .. } => store.claim_totp_step(state, &token.serial, found)?,
                    TokenKind::Hotp => store.claim_hotp_counter(state, &token.serial, found + 1)?,
                };
                if !claimed {
                    println!("no match: {} ({what}) was used by someone else just now", token.serial);
                    return Ok(ExitCode::from(1));
                }
                println!("match: {} ({what}), recorded as used", token.serial);
            }
            None => println!("match: {} ({what}), not recorded (use --consume to)", token.serial),
        }
        return Ok(ExitCode::SUCCESS);
    }

    match replayed_token(user, code, now, windows) {
        Some(serial) => println!("no match: that code of {serial} was already used"),
        None => println!("no match"),
    }
    Ok(ExitCode::from(1))
}

fn print_code(paths: &Paths, user: &str, serial: Option<&str>) -> Result<ExitCode> {
    let db = TokenDb::load(&paths.tokens)?;
    let who = find(&db, user, paths.ignore_case)?;
    let token =
        *chosen_tokens(who.user, who.entry, serial)?.first().ok_or_else(|| format!("{:?} has no token", who.entry))?;
    let secret = token.secret.as_bytes();
    let code = match token.kind {
        TokenKind::Totp { period } => {
            let step = otp::totp_step(SystemClock.now(), period);
            otp::hotp_code(secret, step, token.digits, token.algorithm)
        }
        TokenKind::Hotp => {
            let store = open_state(paths, false)?;
            if let Some(store) = &store {
                store.current_lock(&who.state)?;
            }
            let counter = token_state(store.as_deref(), &who.state, &token.serial).next_counter;
            otp::hotp_code(secret, counter, token.digits, token.algorithm)
        }
    };
    println!("{code}");
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------
// Helpers

fn no_such_user(user: &str) -> String {
    format!("no user {user:?} in the token file")
}

/// A user as the module finds them.
struct Found<'a> {
    /// The name as written in the token file.
    entry: &'a str,
    user: &'a User,
    /// The name the user's state is kept under in the journal.
    state: String,
}

/// The entry the module finds for `name`, by identity::case (the module's
/// rule); when case counts, an entry equal but for case is pointed out.
fn find<'a>(db: &'a TokenDb, name: &str, ignore_case: bool) -> Result<Found<'a>> {
    match db.entry_name(name, ignore_case)? {
        Some(entry) => {
            let user = db.user(entry).ok_or_else(|| no_such_user(name))?;
            Ok(Found { entry, user, state: case::key(entry, ignore_case).into_owned() })
        }
        None => match db.entry_name(name, true).ok().flatten().filter(|_| !ignore_case) {
            Some(other) => Err(format!(
                "{}; {other:?} differs only by case (if the module has ignore_case = yes, give --module its configuration, or --ignore-case)",
                no_such_user(name)
            )
            .into()),
            None => Err(no_such_user(name).into()),
        },
    }
}

/// The name to add to or change in the token file: the entry the module
/// would find for `name` if there is one (so that --ignore-case never makes a
/// second entry equal to it but for case), else `name` as given.
fn entry_for_write(db: &TokenDb, name: &str, ignore_case: bool) -> Result<String> {
    Ok(db.entry_name(name, ignore_case)?.unwrap_or(name).to_owned())
}

/// The user's tokens, or just the one with `serial`.
fn chosen_tokens<'a>(user: &'a User, name: &str, serial: Option<&str>) -> Result<Vec<&'a Token>> {
    match serial {
        None => Ok(user.tokens.iter().collect()),
        Some(serial) => match user.token(serial) {
            Some(token) => Ok(vec![token]),
            None => Err(format!("user {name:?} has no token {serial:?}").into()),
        },
    }
}

/// Held from reading the token file to putting the new one in place, so that two
/// runs at once cannot lose an edit (mfa_core's EditLock: `<token file>.lock`).
fn edit_lock(paths: &Paths) -> Result<EditLock> {
    create_parent_dir(&paths.tokens, 0o750)?;
    Ok(EditLock::acquire(&paths.tokens)?)
}

/// A base32 secret from `file`, or from standard input for "-": the whole text,
/// blanks around it ignored. What was read is wiped once parsed.
fn read_secret(file: &Path) -> Result<Secret> {
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        io::stdin().lock().read_to_end(&mut bytes)
    } else {
        fs::File::open(file).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    let shown = if file.as_os_str() == "-" { "standard input".to_owned() } else { file.display().to_string() };
    let parsed = match read {
        Ok(_) => match std::str::from_utf8(&bytes) {
            Ok(text) if text.trim().is_empty() => Err(format!("no secret in {shown}").into()),
            Ok(text) => Secret::from_base32(text.trim()).map_err(|e| format!("the secret in {shown}: {e}").into()),
            Err(_) => Err(format!("the secret in {shown} is not text").into()),
        },
        Err(e) => Err(format!("cannot read the secret from {shown}: {e}").into()),
    };
    bytes.fill(0);
    std::hint::black_box(&bytes);
    parsed
}

/// The token file, or an empty one when it does not exist yet.
fn load_or_create(path: &Path) -> Result<TokenDb> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TokenDb::new()),
        _ => Ok(TokenDb::load(path)?),
    }
}

fn create_parent_dir(path: &Path, mode: u32) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
            DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A serial this user does not have yet (collisions are unlikely, not impossible).
fn unused_serial(user: Option<&User>, kind: &TokenKind) -> Result<String> {
    loop {
        let serial = Token::new_serial(kind)?;
        if user.is_none_or(|u| u.token(&serial).is_none()) {
            return Ok(serial);
        }
    }
}

/// The store the module keeps its state in, as its configuration (--module)
/// says: its Redis, or the state journal (--state). Said on standard error,
/// so that the administrator knows which one a command acted on. A journal
/// that does not exist is created only when `create` (read-only commands must
/// not create it: a file created by root here could be one the module cannot
/// open later); None when it is not there.
fn open_state(paths: &Paths, create: bool) -> Result<Option<Box<dyn StateStore>>> {
    if let Some(raw) = paths.module.as_deref().map(module_conf::redis_section).transpose()?.flatten() {
        let store = redis_store(&raw)?;
        eprintln!("mfa-admin: state in the {}", store.describe());
        return Ok(Some(Box::new(store)));
    }
    let exists = !matches!(fs::symlink_metadata(&paths.state), Err(e) if e.kind() == io::ErrorKind::NotFound);
    if !exists && !create {
        return Ok(None);
    }
    // Each change flushed (README, "State journal"): an administrator's few writes
    // cost nothing to make durable, whatever the module's `fsync`.
    let store = LocalStore::open_unleased(&paths.state, JournalOptions { fsync: true, ..JournalOptions::default() })?;
    eprintln!("mfa-admin: state in the {}", store.describe());
    Ok(Some(Box::new(store)))
}

/// The Redis store of the module's `redis { }` section, checked as the module checks it.
fn redis_store(raw: &mfa_core::config::RawRedis) -> Result<RedisStore> {
    let settings = mfa_core::config::redis::redis_settings(raw).map_err(|e| format!("module: {e}"))?;
    Ok(RedisStore::open(settings).map_err(|(item, e)| format!("module: invalid '{item}': {e}"))?)
}

fn token_state(store: Option<&dyn StateStore>, user: &str, serial: &str) -> TokenState {
    store.map(|s| s.token(user, serial)).unwrap_or_default()
}

/// Copies what the state journal holds into the module's Redis: each token's
/// last step and counter (only ever moved forward there), each lockout, and
/// the answered States not yet expired. Safe to run again, and while servers
/// run: nothing in Redis goes back.
fn move_state_to_redis(paths: &Paths) -> Result<ExitCode> {
    let module = paths.module.as_deref().ok_or("no module configuration (--module) to find the Redis store in")?;
    let raw = module_conf::redis_section(module)?
        .ok_or_else(|| format!("{} does not say state_store = redis", module.display()))?;
    let redis = redis_store(&raw)?;
    // A mistyped --state must not pass for a finished move (nor leave an empty journal).
    if matches!(fs::symlink_metadata(&paths.state), Err(e) if e.kind() == io::ErrorKind::NotFound) {
        return Err(
            format!("no state journal at {}: nothing to move (see --state, MFA_STATE)", paths.state.display()).into()
        );
    }
    let journal = StateJournal::open(&paths.state, JournalOptions::default())?;
    let db = TokenDb::load(&paths.tokens)?;
    let now = SystemClock.now();
    let (mut tokens, mut locks) = (0, 0);
    for (name, user) in db.users() {
        let state = case::key(name, paths.ignore_case);
        for token in &user.tokens {
            let kept = journal.token(&state, &token.serial);
            if let Some(step) = kept.last_step {
                redis.claim_totp_step(&state, &token.serial, step)?;
                tokens += 1;
            }
            if kept.next_counter > 0 {
                redis.claim_hotp_counter(&state, &token.serial, kept.next_counter)?;
                tokens += 1;
            }
        }
    }
    for user in journal.users() {
        let lock = journal.lock(user);
        if lock.failures > 0 || lock.is_locked(now) {
            redis.set_lock(user, lock, now)?;
            locks += 1;
        }
    }
    let answered = journal.answered_states(now);
    for (id, expires, user) in &answered {
        redis.use_state_once(user, id, *expires, now)?;
    }
    println!(
        "moved {} into the {}: {tokens} token state(s), {locks} lockout(s), {} answered State(s)",
        paths.state.display(),
        redis.describe(),
        answered.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The windows `check` matches in: an option given wins; else the module's own
/// `totp_window` and `hotp_look_ahead` (from --module); else the module's defaults.
fn windows(paths: &Paths, args: &CheckArgs) -> Result<Windows> {
    if let Some(window) = args.window {
        module_conf::option_in_range("--window", "totp_window", window)?;
    }
    if let Some(look_ahead) = args.look_ahead {
        module_conf::option_in_range("--look-ahead", "hotp_look_ahead", look_ahead)?;
    }
    if let (Some(totp_window), Some(hotp_look_ahead)) = (args.window, args.look_ahead) {
        return Ok(Windows { totp_window, hotp_look_ahead });
    }
    let module = module_conf::windows(paths.module.as_deref())?;
    Ok(Windows {
        totp_window: args.window.unwrap_or(module.totp_window),
        hotp_look_ahead: args.look_ahead.unwrap_or(module.hotp_look_ahead),
    })
}

/// A TOTP token for which `code` is right but was already used (to explain a "no match").
fn replayed_token<'a>(user: &'a User, code: &str, now: u64, windows: Windows) -> Option<&'a str> {
    user.tokens.iter().find(|t| verify::is_replay(t, code, now, windows)).map(|t| t.serial.as_str())
}

fn print_user(name: &str, user: &User, state_name: &str, store: Option<&dyn StateStore>, now: u64) -> Result<()> {
    // Catches up with the store first: token() then reads what it holds now.
    let lock = match store {
        Some(store) => store.current_lock(state_name)?,
        None => Default::default(),
    };
    println!("{name}");
    for token in &user.tokens {
        let state = token_state(store, state_name, &token.serial);
        let (shape, progress) = match token.kind {
            TokenKind::Totp { period } => (
                format!("period {period}s"),
                match state.last_step {
                    Some(step) => format!("last step {step}"),
                    None => "no code used yet".to_string(),
                },
            ),
            TokenKind::Hotp => (String::new(), format!("next counter {}", state.next_counter)),
        };
        let description = token.description.as_deref().map(|d| format!("  {d:?}")).unwrap_or_default();
        println!(
            "  {:<14} {}  {:<6} {} digits  {:<11} {progress}{description}",
            token.serial,
            token.kind.name(),
            token.algorithm.name(),
            token.digits,
            shape,
        );
    }
    if let Some(number) = &user.sms {
        println!("  sms    {number}");
    }
    if let Some(address) = &user.email {
        println!("  email  {address}");
    }
    if lock.is_locked(now) {
        println!("  LOCKED for {} more seconds, {} failure(s)", lock.locked_until - now, lock.failures);
    } else {
        println!("  not locked, {} failure(s)", lock.failures);
    }
    Ok(())
}

/// The QR code as text, two modules per character cell. Drawn for a dark
/// terminal: light modules are printed as blocks, dark ones as blank cells.
fn render_qr(uri: &str) -> Result<String> {
    let code = QrCode::new(uri.as_bytes()).map_err(|e| format!("cannot make a QR code: {e}"))?;
    Ok(code.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).build())
}

//! What mfa-admin reads of the module's own configuration (mods-enabled/mfa):
//! whether `state_store = redis`, and then its `redis { }` section, so that
//! mfa-admin acts on the store the running servers use, configured once.
//!
//! A small reader of FreeRADIUS's syntax, enough for these items: `name = value`
//! lines, `name {` ... `}` sections, `#` comments, double quotes, and the
//! `${confdir}`-style variables of Debian's radiusd.conf that a path may use.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use mfa_core::config::declare::parse_integer;
use mfa_core::config::{Item, RawConfig, RawRedis, Section};
use mfa_core::factor::verify::Windows;

/// The items of the module's top level and of its `redis { }` section.
#[derive(Default)]
struct Items {
    top: HashMap<String, String>,
    redis: HashMap<String, String>,
    stats: HashMap<String, String>,
}

/// The module's `redis { }` section when its `state_store` is `redis`; None
/// when the state is in the journal.
pub fn redis_section(path: &Path) -> Result<Option<RawRedis>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let confdir = path.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let items = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let expand =
        |item: &str, value: &str| expand(value, &confdir).map_err(|e| format!("{}: {item}: {e}", path.display()));
    // FreeRADIUS's words are read in any case, as the module reads them.
    match items.top.get("state_store").map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("journal") => return Ok(None),
        Some("redis") => {}
        Some(other) => return Err(format!("{}: state_store \"{other}\" is not journal or redis", path.display())),
    }
    let mut raw = RawRedis::default();
    for (name, value) in &items.redis {
        let value = expand(name, value)?;
        let number = || parse_integer(&value).map_err(|e| format!("redis.{name}: {e}"));
        match name.as_str() {
            "server" => raw.server = Some(value),
            "sentinel_service" => raw.sentinel_service = Some(value),
            "username" => raw.username = Some(value),
            "password" => raw.password = Some(value),
            "sentinel_password" => raw.sentinel_password = Some(value),
            "database" => raw.database = number()?,
            "prefix" => raw.prefix = Some(value),
            "tls" => raw.tls = boolean(&format!("{}: redis.tls", path.display()), &value)?,
            "ca_file" => raw.ca_file = Some(value),
            "ca_path" => raw.ca_path = Some(value),
            "timeout_ms" => raw.timeout_ms = number()?,
            "wait_replicas" => raw.wait_replicas = number()?,
            _ => {} // FreeRADIUS itself refuses unknown items
        }
    }
    Ok(Some(raw))
}

/// The module's `ignore_case` (FreeRADIUS's words for a boolean), false when
/// it is not set: mfa-admin then finds users and keys their state as the module does.
pub fn ignore_case(path: &Path) -> Result<bool, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let items = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    match items.top.get("ignore_case") {
        None => Ok(false),
        Some(value) => boolean(&format!("{}: ignore_case", path.display()), value),
    }
}

/// A boolean as FreeRADIUS reads one: yes, on or true; no, off or false; in any case.
fn boolean(shown: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" => Ok(true),
        "no" | "off" | "false" => Ok(false),
        other => Err(format!("{shown} \"{other}\" is not yes or no")),
    }
}

/// `value` given for the module's item `name` on the command line (`option`):
/// refused outside the item's declared range, as the module refuses it.
pub fn option_in_range(option: &str, name: &str, value: u64) -> Result<u64, String> {
    let item: &Item = RawConfig::ITEMS.iter().find(|item| item.name == name).expect("a declared item");
    let (low, high, unit) = item.range.expect("a declared range");
    if (u64::from(low)..=u64::from(high)).contains(&value) {
        return Ok(value);
    }
    Err(format!("{option} {value} is not within {low} to {high} {unit} (the module's {name})"))
}

/// The windows the module matches codes in: its `totp_window` and
/// `hotp_look_ahead` where `path` sets them, else their declared defaults,
/// each checked against its declared range as the module checks it.
pub fn windows(path: Option<&Path>) -> Result<Windows, String> {
    let items = match path {
        Some(path) => {
            let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Items::default(),
    };
    let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
    let number = |name: &str| -> Result<u64, String> {
        let item: &Item = RawConfig::ITEMS.iter().find(|item| item.name == name).expect("a declared item");
        let Some(value) = items.top.get(name) else {
            return Ok(item.default.and_then(|d| d.parse().ok()).expect("a declared number"));
        };
        let (low, high, unit) = item.range.expect("a declared range");
        match parse_integer(value) {
            Ok(n) if (low..=high).contains(&n) => Ok(u64::from(n)),
            _ => Err(format!("{shown}: {name} \"{value}\" is not within {low} to {high} {unit}")),
        }
    };
    Ok(Windows { totp_window: number("totp_window")?, hotp_look_ahead: number("hotp_look_ahead")? })
}

/// The module's `stats { file }`: where it writes its counters; None when unset.
pub fn stats_file(path: &Path) -> Result<Option<PathBuf>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let confdir = path.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let items = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    match items.stats.get("file").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => {
            let value = expand(value, &confdir).map_err(|e| format!("{}: stats.file: {e}", path.display()))?;
            Ok(Some(PathBuf::from(value)))
        }
    }
}

/// `${confdir}`, `${raddbdir}`, `${modconfdir}` and `${certdir}` as Debian's
/// radiusd.conf sets them, relative to the directory above mods-enabled.
fn expand(value: &str, confdir: &Path) -> Result<String, String> {
    let dir = confdir.display().to_string();
    let known = [
        ("${confdir}", dir.clone()),
        ("${raddbdir}", dir.clone()),
        ("${modconfdir}", format!("{dir}/mods-config")),
        ("${certdir}", format!("{dir}/certs")),
    ];
    let mut out = value.to_string();
    for (name, path) in &known {
        out = out.replace(name, path);
    }
    match out.find("${") {
        Some(at) => Err(format!("cannot expand {}", &out[at..])),
        None => Ok(out),
    }
}

fn parse(text: &str) -> Result<Items, String> {
    let mut items = Items::default();
    // The sections we are in: the module instance first, then its subsections.
    let mut stack: Vec<String> = Vec::new();
    for (number, raw_line) in text.lines().enumerate() {
        let line = strip_comment(raw_line).trim().to_string();
        if line.is_empty() {
            continue;
        }
        if line == "}" {
            stack.pop().ok_or_else(|| format!("line {}: a }} too many", number + 1))?;
            continue;
        }
        if let Some(head) = line.strip_suffix('{') {
            let name = head.split_whitespace().next().unwrap_or("").to_string();
            stack.push(name);
            continue;
        }
        let Some((name, value)) = line.split_once('=') else { continue };
        let (name, value) = (name.trim().to_string(), unquote(value.trim()));
        match stack.len() {
            1 => {
                items.top.entry(name).or_insert(value);
            }
            2 if stack[1] == "redis" => {
                items.redis.entry(name).or_insert(value);
            }
            2 if stack[1] == "stats" => {
                items.stats.entry(name).or_insert(value);
            }
            _ => {}
        }
    }
    Ok(items)
}

/// The line without a `#` comment (a `#` inside double quotes is kept).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        match c {
            '\\' if quoted && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            '#' if !quoted => return &line[..at],
            _ => {}
        }
        escaped = false;
    }
    line
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_redis_section_of_a_module_file() {
        let dir = std::env::temp_dir().join(format!("mfa-admin-conf-{}", std::process::id()));
        fs::create_dir_all(dir.join("mods-enabled")).unwrap();
        let path = dir.join("mods-enabled/mfa");
        let text = "mfa {\n\tmode = otp\n\tstate_store = redis # shared\n\tmessages {\n\t\tprefix = x\n\t}\n\
                    \tredis {\n\t\tserver = \"10.0.0.5:6380\"\n#\t\tusername = nobody\n\t\tpassword = \"p#ss\\\"word\"\n\
                    \t\tdatabase = 3\n\t\ttls = yes\n\t\tca_file = ${certdir}/redis.pem\n\t}\n}\n";
        fs::write(&path, text).unwrap();
        let raw = redis_section(&path).unwrap().expect("state_store = redis");
        assert_eq!(raw.server.as_deref(), Some("10.0.0.5:6380"));
        assert_eq!(raw.username, None);
        assert_eq!(raw.password.as_deref(), Some("p#ss\"word"));
        assert_eq!(raw.database, 3);
        assert!(raw.tls);
        assert_eq!(raw.ca_file, Some(format!("{}/certs/redis.pem", dir.display())));
        assert_eq!(raw.prefix.as_deref(), Some("mfa"), "messages' prefix is not redis'");
        // Words in any case, as FreeRADIUS and the module read them.
        fs::write(&path, "mfa {\n\tstate_store = Redis\n\tredis {\n\t\ttls = Yes\n\t}\n}\n").unwrap();
        assert!(redis_section(&path).unwrap().expect("state_store = Redis").tls);
        fs::write(&path, "mfa {\n\tstate_store = REDIS\n\tredis {\n\t\ttls = OFF\n\t}\n}\n").unwrap();
        assert!(!redis_section(&path).unwrap().expect("state_store = REDIS").tls);
        fs::write(&path, "mfa {\n\tstate_store = redis\n\tredis {\n\t\ttls = maybe\n\t}\n}\n").unwrap();
        assert!(redis_section(&path).unwrap_err().contains("redis.tls \"maybe\" is not yes or no"));
        fs::write(&path, "mfa {\n\tstate_store = Journal\n}\n").unwrap();
        assert!(redis_section(&path).unwrap().is_none());
        fs::write(&path, "mfa {\n\tstate_store = journal\n}\n").unwrap();
        assert!(redis_section(&path).unwrap().is_none());
        fs::write(&path, "mfa {\n}\n").unwrap();
        assert!(redis_section(&path).unwrap().is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_the_stats_file_of_a_module_file() {
        let dir = std::env::temp_dir().join(format!("mfa-admin-stats-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mfa");
        for (text, want) in [
            (
                "mfa {\n\tstats {\n\t\tfile = /var/lib/prometheus/node-exporter/mfa.prom\n\t}\n}\n",
                Some("/var/lib/prometheus/node-exporter/mfa.prom"),
            ),
            ("mfa {\n#\tstats {\n#\t\tfile = /x.prom\n#\t}\n}\n", None),
            ("mfa {\n\tfile = /top.prom\n\tstats {\n\t\tinterval = 5\n\t}\n}\n", None),
        ] {
            fs::write(&path, text).unwrap();
            assert_eq!(stats_file(&path).unwrap(), want.map(PathBuf::from), "{text}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_ignore_case_of_a_module_file() {
        let dir = std::env::temp_dir().join(format!("mfa-admin-case-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mfa");
        for (text, want) in [
            ("mfa {\n\tignore_case = yes\n}\n", Some(true)),
            ("mfa {\n\tignore_case = \"on\" # comment\n}\n", Some(true)),
            ("mfa {\n\tignore_case = no\n}\n", Some(false)),
            ("mfa {\n\tignore_case = TRUE\n}\n", Some(true)),
            ("mfa {\n#\tignore_case = yes\n\tredis {\n\t\tignore_case = yes\n\t}\n}\n", Some(false)),
            ("mfa {\n\tignore_case = maybe\n}\n", None),
        ] {
            fs::write(&path, text).unwrap();
            assert_eq!(ignore_case(&path).ok(), want, "{text}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

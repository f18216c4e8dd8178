//! The token file: which users own which OTP tokens (format in docs/DESIGN.md).
//!
//! Parsing is strict (unknown fields are errors) so that a typo such as
//! `"digit": 8` cannot silently leave a token with a default the admin did not
//! mean. Loading refuses a file that other users can read, because it holds the
//! shared secrets. Error messages never contain a secret: they end up in logs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::factor::otp::{self, Algorithm};
pub use crate::factor::secret::{Secret, SecretError, MIN_SECRET_BYTES, NEW_SECRET_BYTES};
pub use crate::factor::token::{Token, TokenKind};
use crate::store::atomic::{self, AtomicError, Owner};

pub const DEFAULT_DIGITS: u32 = 6;
pub const DEFAULT_PERIOD: u64 = 30;
pub const MAX_PERIOD: u64 = 86_400;
/// Mode of a token file we create: the FreeRADIUS group must be able to read it.
pub const NEW_FILE_MODE: u32 = 0o640;

// ---------------------------------------------------------------------------
// Errors

/// Why the token file (or a value for it) was refused.
#[derive(Debug)]
pub enum TokenError {
    /// A file operation failed; `action` is a verb such as "read" or "rename".
    Io { path: PathBuf, action: &'static str, source: io::Error },
    /// The token file is readable (or writable) by users outside its owner and group.
    Permissions { path: PathBuf, mode: u32 },
    /// Malformed JSON, an unknown or missing field, or a bad secret.
    Syntax { path: Option<PathBuf>, user: Option<String>, message: String },
    /// A well-formed value that is out of range or inconsistent.
    Invalid { path: Option<PathBuf>, user: String, serial: Option<String>, field: &'static str, reason: String },
    /// A secret given on its own (not inside a file) is unusable.
    Secret(&'static str),
    /// The operating system's random source failed.
    Random(String),
}

impl TokenError {
    /// Attaches the file name to a parse error so the admin knows which file to fix.
    fn in_file(mut self, file: &Path) -> Self {
        match &mut self {
            TokenError::Syntax { path, .. } | TokenError::Invalid { path, .. } => *path = Some(file.to_path_buf()),
            _ => {}
        }
        self
    }

    fn invalid(user: &str, serial: Option<&str>, field: &'static str, reason: String) -> Self {
        TokenError::Invalid { path: None, user: user.to_owned(), serial: serial.map(str::to_owned), field, reason }
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> TokenError {
    TokenError::Io { path: path.to_path_buf(), action, source }
}

fn file_prefix(f: &mut fmt::Formatter<'_>, path: &Option<PathBuf>) -> fmt::Result {
    match path {
        Some(p) => write!(f, "token file {}: ", p.display()),
        None => Ok(()),
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // User names and serials are printed with {:?} so that control characters
        // cannot forge extra lines in the FreeRADIUS log.
        match self {
            TokenError::Io { path, action, source } => write!(f, "cannot {action} {}: {source}", path.display()),
            TokenError::Permissions { path, mode } => write!(
                f,
                "token file {} can be accessed by users outside its owner and group \
                 (mode {mode:04o}); it holds secrets, run: chmod 640 {}",
                path.display(),
                path.display()
            ),
            TokenError::Syntax { path, user, message } => {
                file_prefix(f, path)?;
                if let Some(user) = user {
                    write!(f, "user {user:?}: ")?;
                }
                f.write_str(message)
            }
            TokenError::Invalid { path, user, serial, field, reason } => {
                file_prefix(f, path)?;
                write!(f, "user {user:?}")?;
                if let Some(serial) = serial {
                    write!(f, ", token {serial:?}")?;
                }
                write!(f, ", field \"{field}\": {reason}")
            }
            TokenError::Secret(reason) => f.write_str(reason),
            TokenError::Random(reason) => {
                write!(f, "the system random number generator failed: {reason}")
            }
        }
    }
}

impl From<SecretError> for TokenError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Invalid(reason) => TokenError::Secret(reason),
            SecretError::Random(reason) => TokenError::Random(reason),
        }
    }
}

impl From<AtomicError> for TokenError {
    fn from(e: AtomicError) -> Self {
        TokenError::Io { path: e.path, action: e.step.action(), source: e.source }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Tokens and users

impl Token {
    /// A random serial such as `TOTP-3F9A2C10`.
    pub fn new_serial(kind: &TokenKind) -> Result<String, TokenError> {
        let mut bytes = [0u8; 4];
        getrandom::getrandom(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(format!("{}-{:08X}", kind.name().to_ascii_uppercase(), u32::from_be_bytes(bytes)))
    }

    /// The Key URI an authenticator app scans (Google's otpauth:// format).
    /// HOTP tokens start at counter 0, as enrollment does.
    pub fn otpauth_uri(&self, user: &str, issuer: &str) -> String {
        let mut uri = format!("otpauth://{}/", self.kind.name());
        if !issuer.is_empty() {
            percent_encode_into(&mut uri, issuer);
            uri.push(':');
        }
        percent_encode_into(&mut uri, user);
        uri.push_str("?secret=");
        uri.push_str(&self.secret.to_base32());
        if !issuer.is_empty() {
            uri.push_str("&issuer=");
            percent_encode_into(&mut uri, issuer);
        }
        uri.push_str("&algorithm=");
        uri.push_str(self.algorithm.name());
        uri.push_str(&format!("&digits={}", self.digits));
        match self.kind {
            TokenKind::Totp { period } => uri.push_str(&format!("&period={period}")),
            TokenKind::Hotp => uri.push_str("&counter=0"),
        }
        uri
    }

    /// Checks every rule a token in the file must satisfy.
    pub fn validate(&self, user: &str) -> Result<(), TokenError> {
        let serial = Some(self.serial.as_str());
        if self.serial.is_empty() {
            return Err(TokenError::invalid(user, None, "serial", "must not be empty".into()));
        }
        if self.serial.chars().any(char::is_control) {
            return Err(TokenError::invalid(user, serial, "serial", "must not contain control characters".into()));
        }
        if !(otp::MIN_DIGITS..=otp::MAX_DIGITS).contains(&self.digits) {
            return Err(TokenError::invalid(
                user,
                serial,
                "digits",
                format!("must be {} to {}, not {}", otp::MIN_DIGITS, otp::MAX_DIGITS, self.digits),
            ));
        }
        if let TokenKind::Totp { period } = self.kind {
            if !(1..=MAX_PERIOD).contains(&period) {
                return Err(TokenError::invalid(
                    user,
                    serial,
                    "period",
                    format!("must be 1 to {MAX_PERIOD} seconds, not {period}"),
                ));
            }
        }
        if self.secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::invalid(
                user,
                serial,
                "secret",
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// Hex-escapes everything but RFC 3986 unreserved characters, so that spaces,
/// `:` or `@` in names cannot change the URI's structure.
fn percent_encode_into(out: &mut String, text: &str) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct User {
    /// In file order: the first token is the default for `mfa-admin code`.
    pub tokens: Vec<Token>,
    /// A phone number for codes sent by SMS.
    pub sms: Option<String>,
    /// An e-mail address for codes sent by e-mail.
    pub email: Option<String>,
    /// Groups, for reply attributes (`reply Class { from = "user.groups" }`).
    pub groups: Vec<String>,
}

impl User {
    pub fn token(&self, serial: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.serial == serial)
    }

    /// Whether the user has any second factor at all.
    pub fn has_factor(&self) -> bool {
        !self.tokens.is_empty() || self.sms.is_some() || self.email.is_some()
    }
}

/// Groups are reply attribute values: each non-empty, one line, at most 253 bytes.
pub fn validate_groups(user: &str, groups: &[String]) -> Result<(), TokenError> {
    match groups.iter().find(|g| g.is_empty() || g.len() > 253 || g.chars().any(char::is_control)) {
        Some(bad) => Err(TokenError::invalid(
            user,
            None,
            "groups",
            format!("{bad:?} is empty, longer than 253 bytes or holds a control character"),
        )),
        None => Ok(()),
    }
}

/// A phone number: digits with an optional leading '+', spaces and dashes allowed.
pub fn validate_sms(user: &str, number: &str) -> Result<(), TokenError> {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let allowed =
        number.char_indices().all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (c == '+' && i == 0));
    if !allowed || !(6..=20).contains(&digits) {
        return Err(TokenError::invalid(
            user,
            None,
            "sms",
            "must be a phone number: 6 to 20 digits, an optional leading '+'".into(),
        ));
    }
    Ok(())
}

/// An e-mail address, checked loosely: one '@' with text on both sides.
pub fn validate_email(user: &str, address: &str) -> Result<(), TokenError> {
    let ok = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && address.len() <= 254
                && !address.chars().any(|c| c.is_control() || c.is_whitespace())
        }
        None => false,
    };
    if !ok {
        return Err(TokenError::invalid(user, None, "email", "must be an e-mail address".into()));
    }
    Ok(())
}

fn validate_user_name(user: &str) -> Result<(), TokenError> {
    if user.is_empty() {
        return Err(TokenError::invalid(user, None, "users", "user names must not be empty".into()));
    }
    if user.chars().any(char::is_control) {
        return Err(TokenError::invalid(user, None, "users", "user names must not contain control characters".into()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The file's JSON shape

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    sms: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Totp,
    Hotp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    serial: String,
    #[serde(rename = "type")]
    kind: RawKind,
    secret: Secret,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    digits: Option<u32>,
    #[serde(default)]
    period: Option<u64>,
    #[serde(default)]
    description: Option<String>,
}

impl RawToken {
    fn into_token(self, user: &str) -> Result<Token, TokenError> {
        let serial = Some(self.serial.as_str());
        let kind = match (self.kind, self.period) {
            (RawKind::Totp, period) => TokenKind::Totp { period: period.unwrap_or(DEFAULT_PERIOD) },
            (RawKind::Hotp, None) => TokenKind::Hotp,
            (RawKind::Hotp, Some(_)) => {
                return Err(TokenError::invalid(user, serial, "period", "only totp tokens have a period".into()))
            }
        };
        let algorithm = match &self.algorithm {
            None => Algorithm::Sha1,
            Some(name) => Algorithm::parse(name).ok_or_else(|| {
                TokenError::invalid(user, serial, "algorithm", format!("must be SHA1, SHA256 or SHA512, not {name:?}"))
            })?,
        };
        let token = Token {
            serial: self.serial,
            kind,
            algorithm,
            digits: self.digits.unwrap_or(DEFAULT_DIGITS),
            secret: self.secret,
            description: self.description,
        };
        token.validate(user)?;
        Ok(token)
    }
}

/// What the deserializer remembers for error messages: the user being read when
/// serde failed (serde_json only gives a line), or the validation error that
/// stopped it.
#[derive(Default)]
struct ParseContext {
    failed_user: RefCell<Option<String>>,
    invalid: RefCell<Option<TokenError>>,
}

/// Deserializes `{"users": {...}}` straight into the database: each user is
/// checked and converted as soon as it is read, so that its temporaries are freed
/// before the next user's allocations (a 100,000-user file then leaves no heap
/// holes between the users' data).
struct FileSeed<'c> {
    context: &'c ParseContext,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = HashMap<String, User>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = HashMap<String, User>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a \"users\" field")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut users = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "users" {
                return Err(de::Error::unknown_field(&key, &["users"]));
            }
            if users.is_some() {
                return Err(de::Error::duplicate_field("users"));
            }
            users = Some(map.next_value_seed(UsersSeed { context: self.context })?);
        }
        users.ok_or_else(|| de::Error::missing_field("users"))
    }
}

struct UsersSeed<'c> {
    context: &'c ParseContext,
}

impl<'de> DeserializeSeed<'de> for UsersSeed<'_> {
    type Value = HashMap<String, User>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UsersSeed<'_> {
    type Value = HashMap<String, User>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping user names to {\"tokens\": [...]}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut users = HashMap::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(name) = map.next_key::<String>()? {
            let raw = match map.next_value::<RawUser>() {
                Ok(raw) => raw,
                Err(e) => {
                    *self.context.failed_user.borrow_mut() = Some(name);
                    return Err(e);
                }
            };
            let checked = build_user(&name, raw).and_then(|user| {
                if users.contains_key(&name) {
                    Err(TokenError::invalid(&name, None, "users", "the user appears twice".into()))
                } else {
                    Ok(user)
                }
            });
            match checked {
                Ok(user) => {
                    users.insert(name, user);
                }
                Err(e) => {
                    let text = e.to_string();
                    *self.context.invalid.borrow_mut() = Some(e);
                    return Err(de::Error::custom(text));
                }
            }
        }
        users.shrink_to_fit();
        Ok(users)
    }
}

/// One user of the file, checked.
fn build_user(name: &str, raw: RawUser) -> Result<User, TokenError> {
    validate_user_name(name)?;
    validate_groups(name, &raw.groups)?;
    if let Some(number) = &raw.sms {
        validate_sms(name, number)?;
    }
    if let Some(address) = &raw.email {
        validate_email(name, address)?;
    }
    let mut user =
        User { tokens: Vec::with_capacity(raw.tokens.len()), sms: raw.sms, email: raw.email, groups: raw.groups };
    for raw_token in raw.tokens {
        let token = raw_token.into_token(name)?;
        if user.token(&token.serial).is_some() {
            return Err(duplicate_serial(name, &token.serial));
        }
        user.tokens.push(token);
    }
    Ok(user)
}

#[derive(Serialize)]
struct OutFile<'a> {
    users: BTreeMap<&'a str, OutUser<'a>>,
}

#[derive(Serialize)]
struct OutUser<'a> {
    tokens: Vec<OutToken<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sms: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
}

#[derive(Serialize)]
struct OutToken<'a> {
    serial: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    secret: &'a Secret,
    algorithm: &'static str,
    digits: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

// ---------------------------------------------------------------------------
// The database

/// All users and their tokens, as read from the token file.
#[derive(Debug, Clone, Default)]
pub struct TokenDb {
    users: HashMap<String, User>,
}

impl TokenDb {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and validates the file's text.
    pub fn parse(text: &str) -> Result<TokenDb, TokenError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// Parses and validates the file's bytes, as `load` does.
    pub fn parse_bytes(bytes: &[u8]) -> Result<TokenDb, TokenError> {
        let context = ParseContext::default();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = FileSeed { context: &context }.deserialize(&mut de).and_then(|users| de.end().map(|()| users));
        match parsed {
            Ok(users) => Ok(TokenDb { users }),
            Err(e) => Err(context.invalid.borrow_mut().take().unwrap_or_else(|| TokenError::Syntax {
                path: None,
                user: context.failed_user.borrow_mut().take(),
                message: escape_controls(e.to_string()),
            })),
        }
    }

    /// The same users under lower-case names, for lookups that ignore case; an
    /// error names two users whose names differ only by case.
    pub fn folded(self) -> Result<TokenDb, TokenError> {
        let mut users = HashMap::with_capacity(self.users.len());
        for (name, user) in self.users {
            let folded = name.to_lowercase();
            if users.insert(folded.clone(), user).is_some() {
                return Err(TokenError::invalid(
                    &name,
                    None,
                    "users",
                    format!("the user appears twice when case is ignored (as {folded:?})"),
                ));
            }
        }
        Ok(TokenDb { users })
    }

    /// Reads the token file, refusing it when users outside its owner and group
    /// can access it.
    pub fn load(path: &Path) -> Result<TokenDb, TokenError> {
        let mut file = File::open(path).map_err(|e| io_error("open the token file", path, e))?;
        let meta = file.metadata().map_err(|e| io_error("inspect the token file", path, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            return Err(TokenError::Permissions { path: path.to_path_buf(), mode });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        let read = file.read_to_end(&mut bytes);
        let parsed = read
            .map_err(|e| io_error("read the token file", path, e))
            .and_then(|_| Self::parse_bytes(&bytes).map_err(|e| e.in_file(path)));
        // The raw text holds every secret; wipe it before the buffer is freed.
        bytes.fill(0);
        std::hint::black_box(&bytes);
        parsed
    }

    /// The file's text: users sorted by name so that saved files diff cleanly.
    pub fn to_json(&self) -> String {
        let users = self
            .users
            .iter()
            .map(|(name, user)| {
                let tokens = user
                    .tokens
                    .iter()
                    .map(|t| OutToken {
                        serial: &t.serial,
                        kind: t.kind.name(),
                        secret: &t.secret,
                        algorithm: t.algorithm.name(),
                        digits: t.digits,
                        period: match t.kind {
                            TokenKind::Totp { period } => Some(period),
                            TokenKind::Hotp => None,
                        },
                        description: t.description.as_deref(),
                    })
                    .collect();
                (
                    name.as_str(),
                    OutUser { tokens, sms: user.sms.as_deref(), email: user.email.as_deref(), groups: &user.groups },
                )
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&OutFile { users }).expect("token file serializes");
        text.push('\n');
        text
    }

    /// Replaces the file atomically: a reader (the module reloading) sees either
    /// the old or the new file, never half of one. An existing file keeps its
    /// owner, group and mode; a new one gets mode 0640 and its directory's group
    /// (where FreeRADIUS's group is expected to be), as a setgid directory would.
    pub fn save(&self, path: &Path) -> Result<(), TokenError> {
        let mut text = self.to_json().into_bytes();
        let result = write_atomically(path, &text);
        text.fill(0);
        std::hint::black_box(&text);
        result
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// All users, sorted by name.
    pub fn users(&self) -> impl Iterator<Item = (&str, &User)> {
        let mut all: Vec<(&str, &User)> = self.users.iter().map(|(n, u)| (n.as_str(), u)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Adds a token to a user (creating the user), after the file's validation rules.
    pub fn add_token(&mut self, user: &str, token: Token) -> Result<(), TokenError> {
        validate_user_name(user)?;
        token.validate(user)?;
        let entry = self.users.entry(user.to_owned()).or_default();
        if entry.token(&token.serial).is_some() {
            return Err(duplicate_serial(user, &token.serial));
        }
        entry.tokens.push(token);
        Ok(())
    }

    /// Sets (or, with None, clears) a user's SMS number and e-mail address, creating the user.
    pub fn set_contacts(
        &mut self,
        user: &str,
        sms: Option<Option<String>>,
        email: Option<Option<String>>,
    ) -> Result<(), TokenError> {
        validate_user_name(user)?;
        if let Some(Some(number)) = &sms {
            validate_sms(user, number)?;
        }
        if let Some(Some(address)) = &email {
            validate_email(user, address)?;
        }
        let entry = self.users.entry(user.to_owned()).or_default();
        if let Some(sms) = sms {
            entry.sms = sms;
        }
        if let Some(email) = email {
            entry.email = email;
        }
        if !entry.has_factor() {
            self.users.remove(user);
        }
        Ok(())
    }

    /// Sets the groups of a user who has a second factor; each is one line of text.
    pub fn set_groups(&mut self, user: &str, groups: Vec<String>) -> Result<(), TokenError> {
        validate_user_name(user)?;
        validate_groups(user, &groups)?;
        let Some(entry) = self.users.get_mut(user) else {
            return Err(TokenError::invalid(
                user,
                None,
                "groups",
                "the user has no second factor: enroll one first".into(),
            ));
        };
        entry.groups = groups;
        Ok(())
    }

    pub fn remove_user(&mut self, user: &str) -> Option<User> {
        self.users.remove(user)
    }

    /// Removes one token; a user left without tokens is removed as well, so that
    /// the file never lists users who cannot log in.
    pub fn remove_token(&mut self, user: &str, serial: &str) -> Option<Token> {
        let entry = self.users.get_mut(user)?;
        let index = entry.tokens.iter().position(|t| t.serial == serial)?;
        let token = entry.tokens.remove(index);
        if !entry.has_factor() {
            self.users.remove(user);
        }
        Some(token)
    }
}

/// serde quotes an unknown field or type name as it is: escape its control
/// characters, so that the message stays one log line.
fn escape_controls(message: String) -> String {
    if !message.chars().any(char::is_control) {
        return message;
    }
    message.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

fn duplicate_serial(user: &str, serial: &str) -> TokenError {
    TokenError::invalid(user, Some(serial), "serial", "another token of this user has the same serial".into())
}

/// An existing file keeps its owner and group (without them FreeRADIUS might no
/// longer read it) and its mode.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TokenError> {
    let (mode, owner) = match fs::metadata(path) {
        Ok(meta) => (meta.mode() & 0o7777, Owner::Exactly { uid: meta.uid(), gid: meta.gid() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (NEW_FILE_MODE, Owner::DirectoryGroup),
        Err(e) => return Err(io_error("inspect the token file", path, e)),
    };
    atomic::replace(path, bytes, mode, owner).map_err(TokenError::from)
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = r#"{
      "users": {
        "alice": {
          "tokens": [
            {"serial": "TOTP-3F9A2C10", "type": "totp", "secret": "JBSWY3DPEHPK3PXP",
             "algorithm": "SHA1", "digits": 6, "period": 30, "description": "phone"},
            {"serial": "HOTP-0001", "type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
             "algorithm": "SHA1", "digits": 6}
          ]
        }
      }
    }"#;

    use crate::testutil::TempDir;

    #[test]
    fn sms_and_email_destinations() {
        let db = TokenDb::parse(
            r#"{"users": {"ann": {"sms": "+45 1234 5612", "email": "ann@example.com"},
                           "ben": {"tokens": [], "email": "ben@example.com"}}}"#,
        )
        .unwrap();
        let ann = db.user("ann").unwrap();
        assert_eq!(ann.sms.as_deref(), Some("+45 1234 5612"));
        assert!(ann.tokens.is_empty() && ann.has_factor());
        let again = TokenDb::parse(&db.to_json()).unwrap();
        assert_eq!(again.user("ann").unwrap().email.as_deref(), Some("ann@example.com"));
        assert_eq!(again.user("ben").unwrap().sms, None);

        for bad in [r#""sms": "12ab5678""#, r#""sms": "123""#, r#""email": "nobody""#, r#""email": "a@b@c""#] {
            let text = format!(r#"{{"users": {{"x": {{{bad}}}}}}}"#);
            assert!(TokenDb::parse(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn folding_case_merges_nothing_silently() {
        let db = TokenDb::parse(r#"{"users": {"Alice": {"sms": "+4512345612"}, "bob": {}}}"#).unwrap();
        let folded = db.folded().unwrap();
        assert!(folded.user("alice").is_some() && folded.user("Alice").is_none());
        let twice = TokenDb::parse(r#"{"users": {"Alice": {}, "alice": {}}}"#).unwrap();
        assert!(twice.folded().unwrap_err().to_string().contains("when case is ignored"));
    }

    #[test]
    fn contacts_set_and_cleared() {
        let mut db = TokenDb::new();
        db.set_contacts("cy", Some(Some("+4512345612".into())), None).unwrap();
        assert!(db.user("cy").unwrap().sms.is_some());
        assert!(db.set_contacts("cy", None, Some(Some("bad".into()))).is_err());
        db.set_contacts("cy", Some(None), None).unwrap();
        assert!(db.user("cy").is_none(), "a user with no factor left is removed");
    }

    fn one_token(fields: &str) -> String {
        format!(
            r#"{{"users": {{"bob": {{"tokens": [{{"serial": "S1", "type": "totp",
                "secret": "JBSWY3DPEHPK3PXP"{fields}}}]}}}}}}"#
        )
    }

    fn error_of(text: &str) -> String {
        TokenDb::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_design_example() {
        let db = TokenDb::parse(ALICE).unwrap();
        assert_eq!(db.len(), 1);
        let alice = db.user("alice").unwrap();
        assert_eq!(alice.tokens.len(), 2);
        let totp = &alice.tokens[0];
        assert_eq!(totp.serial, "TOTP-3F9A2C10");
        assert_eq!(totp.kind, TokenKind::Totp { period: 30 });
        assert_eq!(totp.algorithm, Algorithm::Sha1);
        assert_eq!(totp.digits, 6);
        assert_eq!(totp.secret.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(totp.description.as_deref(), Some("phone"));
        let hotp = alice.token("HOTP-0001").unwrap();
        assert_eq!(hotp.kind, TokenKind::Hotp);
        assert_eq!(hotp.secret.as_bytes(), b"12345678901234567890");
        assert!(db.user("bob").is_none());
    }

    #[test]
    fn defaults() {
        let db = TokenDb::parse(&one_token("")).unwrap();
        let t = &db.user("bob").unwrap().tokens[0];
        assert_eq!(t.kind, TokenKind::Totp { period: DEFAULT_PERIOD });
        assert_eq!(t.algorithm, Algorithm::Sha1);
        assert_eq!(t.digits, 6);
        assert_eq!(t.description, None);
        let db = TokenDb::parse(&one_token(r#", "algorithm": "SHA512", "digits": 8, "period": 60"#)).unwrap();
        let t = &db.user("bob").unwrap().tokens[0];
        assert_eq!(t.kind, TokenKind::Totp { period: 60 });
        assert_eq!(t.algorithm, Algorithm::Sha512);
        assert_eq!(t.digits, 8);
        assert!(TokenDb::parse(r#"{"users": {}}"#).unwrap().is_empty());
    }

    #[test]
    fn rejects_out_of_range_values_naming_user_serial_and_field() {
        for (fields, field) in [
            (r#", "digits": 5"#, "digits"),
            (r#", "digits": 9"#, "digits"),
            (r#", "period": 0"#, "period"),
            (r#", "period": 86401"#, "period"),
            (r#", "algorithm": "MD5""#, "algorithm"),
        ] {
            let msg = error_of(&one_token(fields));
            assert!(msg.contains("\"bob\""), "{msg}");
            assert!(msg.contains("\"S1\""), "{msg}");
            assert!(msg.contains(&format!("field \"{field}\"")), "{msg}");
        }
        assert!(TokenDb::parse(&one_token(r#", "digits": 8, "period": 86400"#)).is_ok());
        let hotp_period = r#"{"users": {"bob": {"tokens": [{"serial": "H", "type": "hotp",
            "secret": "JBSWY3DPEHPK3PXP", "period": 30}]}}}"#;
        assert!(error_of(hotp_period).contains("field \"period\""));
    }

    #[test]
    fn rejects_duplicate_serials_and_empty_names() {
        let dup = r#"{"users": {"carol": {"tokens": [
            {"serial": "X", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"},
            {"serial": "X", "type": "hotp", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        let msg = error_of(dup);
        assert!(msg.contains("\"carol\"") && msg.contains("\"X\"") && msg.contains("serial"));
        // The same serial under two users is fine: state is keyed by (user, serial).
        let two_users = r#"{"users": {
            "a": {"tokens": [{"serial": "X", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"}]},
            "b": {"tokens": [{"serial": "X", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        assert_eq!(TokenDb::parse(two_users).unwrap().len(), 2);
        let empty_user = r#"{"users": {"": {"tokens": []}}}"#;
        assert!(error_of(empty_user).contains("must not be empty"));
        let empty_serial = r#"{"users": {"d": {"tokens": [
            {"serial": "", "type": "totp", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        assert!(error_of(empty_serial).contains("field \"serial\""));
        let twice = r#"{"users": {"e": {"tokens": []}, "e": {"tokens": []}}}"#;
        assert!(error_of(twice).contains("appears twice"));
    }

    #[test]
    fn rejects_unknown_fields_and_bad_syntax() {
        let msg = error_of(&one_token(r#", "digit": 8"#));
        assert!(msg.contains("unknown field `digit`"), "{msg}");
        assert!(msg.contains("user \"bob\""), "{msg}");
        assert!(msg.contains("line"), "{msg}");
        assert!(error_of(r#"{"users": {"bob": {"tokens": [], "pin": 1}}}"#).contains("unknown field `pin`"));
        assert!(error_of(r#"{"users": {}, "version": 2}"#).contains("unknown field `version`"));
        assert!(error_of(r#"{"user": {}}"#).contains("unknown field `user`"));
        assert!(error_of(r#"{}"#).contains("missing field `users`"));
        // A user listed with no factor at all is known, and refused as having none.
        assert!(!TokenDb::parse(r#"{"users": {"bob": {}}}"#).unwrap().user("bob").unwrap().has_factor());
        let no_type = r#"{"users": {"bob": {"tokens": [{"serial": "S", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        assert!(error_of(no_type).contains("missing field `type`"));
        let bad_type =
            r#"{"users": {"bob": {"tokens": [{"serial": "S", "type": "sms", "secret": "JBSWY3DPEHPK3PXP"}]}}}"#;
        assert!(error_of(bad_type).contains("sms"));
        assert!(error_of(r#"{"users": {}} trailing"#).contains("trailing"));
        assert!(error_of("").contains("EOF"));
    }

    #[test]
    fn a_name_with_control_characters_stays_one_log_line() {
        // Found by fuzzing (fuzz/regressions/token_file/): serde quoted the name raw.
        for text in [
            "{\"users\": {}, \"x\\nrlm_mfa: forged line\": 1}",
            "{\"users\": {\"bob\": {\"tokens\": [{\"serial\": \"S\", \"type\": \"totp\\u001b[2J\"}]}}}",
            "{\"\u{7f}\"",
        ] {
            let error = error_of(text);
            assert!(!error.chars().any(char::is_control), "{error:?}");
        }
        assert!(error_of("{\"users\": {}, \"x\\ny\": 1}").contains("unknown field `x\\ny`"));
    }

    #[test]
    fn secret_errors_never_show_the_secret() {
        let bad = "JBSWY3DPEHPK3PX1"; // '1' is not base32
        let msg = error_of(&one_token("").replace("JBSWY3DPEHPK3PXP", bad));
        assert!(msg.contains("not valid base32") && msg.contains("\"bob\""), "{msg}");
        assert!(!msg.contains(bad), "{msg}");
        let short = "JBSWY3DP"; // 5 bytes
        let msg = error_of(&one_token("").replace("JBSWY3DPEHPK3PXP", short));
        assert!(msg.contains("too short") && !msg.contains(short), "{msg}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let db = TokenDb::parse(ALICE).unwrap();
        let token = &db.user("alice").unwrap().tokens[0];
        for text in
            [format!("{token:?}"), format!("{:?}", token.secret), format!("{}", token.secret), format!("{db:?}")]
        {
            assert!(!text.contains("JBSWY3DPEHPK3PXP"), "{text}");
            assert!(!text.contains("72, 101, 108"), "{text}"); // the bytes of "Hel"
            assert!(!text.contains("Hello"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        assert_eq!(serde_json::to_string(&token.secret).unwrap(), "\"JBSWY3DPEHPK3PXP\"");
        let back: Secret = serde_json::from_str("\"JBSWY3DPEHPK3PXP\"").unwrap();
        assert_eq!(back.as_bytes(), token.secret.as_bytes());
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = TempDir::new("tokens");
        for mode in [0o644, 0o604, 0o602, 0o601] {
            let path = dir.file("tokens.json", ALICE, mode);
            let err = TokenDb::load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, TokenError::Permissions { .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(msg.contains("chmod 640"), "{msg}");
        }
        for mode in [0o640, 0o600, 0o660, 0o400] {
            let path = dir.file("tokens.json", ALICE, mode);
            assert_eq!(TokenDb::load(&path).unwrap().len(), 1, "{mode:o}");
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = TempDir::new("tokens");
        let missing = dir.0.join("missing.json");
        let msg = TokenDb::load(&missing).unwrap_err().to_string();
        assert!(msg.contains("missing.json"), "{msg}");
        let path = dir.file("bad.json", &one_token(r#", "digits": 9"#), 0o600);
        let msg = TokenDb::load(&path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()) && msg.contains("digits"), "{msg}");
        let path = dir.file("syntax.json", "{\"users\": {", 0o600);
        let msg = TokenDb::load(&path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn save_and_load_round_trip_keeping_the_mode() {
        let dir = TempDir::new("tokens");
        let db = TokenDb::parse(ALICE).unwrap();

        let fresh = dir.0.join("new.json");
        db.save(&fresh).unwrap();
        assert_eq!(fs::metadata(&fresh).unwrap().mode() & 0o7777, NEW_FILE_MODE);

        let existing = dir.file("tokens.json", "{\"users\": {}}", 0o600);
        db.save(&existing).unwrap();
        assert_eq!(fs::metadata(&existing).unwrap().mode() & 0o7777, 0o600);
        let back = TokenDb::load(&existing).unwrap();
        assert_eq!(back.to_json(), db.to_json());
        let t = back.user("alice").unwrap().token("TOTP-3F9A2C10").unwrap();
        assert_eq!(t.secret.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(t.description.as_deref(), Some("phone"));
        // Nothing left behind but the two files.
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 2);
        // HOTP tokens have no period in the file; defaults are written out.
        let text = fs::read_to_string(&existing).unwrap();
        assert!(text.ends_with("}\n"));
        let hotp_at = text.find("HOTP-0001").unwrap();
        assert!(!text[hotp_at..].contains("period"));
    }

    #[test]
    fn output_is_sorted_and_stable() {
        let mut db = TokenDb::new();
        for name in ["zoe", "adam", "mia"] {
            let token = Token {
                serial: format!("S-{name}"),
                kind: TokenKind::Hotp,
                algorithm: Algorithm::Sha256,
                digits: 8,
                secret: Secret::from_bytes(vec![7; 20]),
                description: None,
            };
            db.add_token(name, token).unwrap();
        }
        let text = db.to_json();
        let (a, m, z) = (text.find("adam").unwrap(), text.find("mia").unwrap(), text.find("zoe").unwrap());
        assert!(a < m && m < z);
        assert_eq!(TokenDb::parse(&text).unwrap().to_json(), text);
        let names: Vec<&str> = db.users().map(|(n, _)| n).collect();
        assert_eq!(names, ["adam", "mia", "zoe"]);
    }

    #[test]
    fn add_and_remove() {
        let mut db = TokenDb::parse(ALICE).unwrap();
        let dup = db.user("alice").unwrap().tokens[0].clone();
        assert!(db.add_token("alice", dup.clone()).is_err());
        let mut bad = dup.clone();
        bad.serial = "NEW".into();
        bad.digits = 4;
        assert!(db.add_token("alice", bad).is_err());
        assert!(db.add_token("", dup.clone()).is_err());
        db.add_token("bob", dup).unwrap();
        assert_eq!(db.len(), 2);

        assert!(db.remove_token("alice", "nope").is_none());
        assert_eq!(db.remove_token("alice", "HOTP-0001").unwrap().serial, "HOTP-0001");
        assert_eq!(db.user("alice").unwrap().tokens.len(), 1);
        // The last token takes the user with it.
        db.remove_token("alice", "TOTP-3F9A2C10").unwrap();
        assert!(db.user("alice").is_none());
        assert!(db.remove_user("bob").is_some());
        assert!(db.remove_user("bob").is_none());
        assert!(db.is_empty());
    }

    #[test]
    fn new_serials_look_right() {
        let s = Token::new_serial(&TokenKind::Totp { period: 30 }).unwrap();
        assert_eq!(s.len(), 13);
        assert!(s.starts_with("TOTP-"));
        assert!(s[5..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert!(Token::new_serial(&TokenKind::Hotp).unwrap().starts_with("HOTP-"));
    }

    #[test]
    fn otpauth_uris() {
        let db = TokenDb::parse(ALICE).unwrap();
        let alice = db.user("alice").unwrap();
        assert_eq!(
            alice.tokens[0].otpauth_uri("alice", "rlm_mfa"),
            "otpauth://totp/rlm_mfa:alice?secret=JBSWY3DPEHPK3PXP&issuer=rlm_mfa\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            alice.tokens[1].otpauth_uri("a b@example.com", "ACME Co:VPN"),
            "otpauth://hotp/ACME%20Co%3AVPN:a%20b%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co%3AVPN\
             &algorithm=SHA1&digits=6&counter=0"
        );
        assert_eq!(
            alice.tokens[0].otpauth_uri("j\u{f6}rg", ""),
            "otpauth://totp/j%C3%B6rg?secret=JBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn many_users_parse() {
        // How fast 100,000 users load is measured by bench/ (part 2), not asserted here.
        let users = if cfg!(debug_assertions) { 20_000 } else { 100_000 };
        let mut text = String::from("{\"users\": {");
        for i in 0..users {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!(
                "\"user{i}\": {{\"tokens\": [{{\"serial\": \"TOTP-{i:08X}\", \"type\": \"totp\", \
                 \"secret\": \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\", \"description\": \"phone\"}}]}}"
            ));
        }
        text.push_str("}}");
        let db = TokenDb::parse(&text).unwrap();
        assert_eq!(db.len(), users);
        assert!(db.user(&format!("user{}", users - 1)).is_some());
    }
}

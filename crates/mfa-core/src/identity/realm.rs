//! Realm handling: splitting `user@realm` or `DOMAIN\user` into the user name
//! used for token lookup and the realm, per the module configuration.

use std::fmt;

/// Which occurrence of the delimiter splits the name when there are several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    First,
    Last,
}

/// Where the realm sits: after the user (`user@realm`) or before it (`DOMAIN\user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealmPosition {
    Suffix,
    Prefix,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealmConfig {
    pub delimiter: char,
    pub split: Split,
    pub position: RealmPosition,
    /// Whether the looked-up user name is the name without its realm.
    pub strip: bool,
}

impl Default for RealmConfig {
    /// `user@realm`, split at the last '@' (user names may themselves be
    /// e-mail addresses, realms never contain '@'), realm stripped.
    fn default() -> Self {
        Self { delimiter: '@', split: Split::Last, position: RealmPosition::Suffix, strip: true }
    }
}

/// Pieces of the name parsed, borrowed from it: parsing allocates nothing (it runs
/// twice per login).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedName<'a> {
    /// The name to look tokens up by: stripped of the realm when `strip` is set,
    /// the whole original name otherwise.
    pub user: &'a str,
    /// The realm, if the name had a delimiter.
    pub realm: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RealmError {
    EmptyUser,
    EmptyRealm,
}

impl fmt::Display for RealmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyUser => "user part is empty",
            Self::EmptyRealm => "realm part is empty",
        })
    }
}

impl std::error::Error for RealmError {}

/// Splits `name` into user and realm.
///
/// Delimiters other than the splitting one stay inside the part they fall in.
/// An empty name counts as an empty user part: there is nobody to look up.
pub fn parse<'a>(name: &'a str, cfg: &RealmConfig) -> Result<ParsedName<'a>, RealmError> {
    let found = if cfg.delimiter.is_ascii() {
        // An ASCII byte is a whole character in UTF-8: a byte search finds the same
        // split as the character search below, for less (this runs on every login).
        let (bytes, delimiter) = (name.as_bytes(), cfg.delimiter as u8);
        let at = match cfg.split {
            Split::First => bytes.iter().position(|&b| b == delimiter),
            Split::Last => bytes.iter().rposition(|&b| b == delimiter),
        };
        at.map(|at| (&name[..at], &name[at + 1..]))
    } else {
        match cfg.split {
            Split::First => name.split_once(cfg.delimiter),
            Split::Last => name.rsplit_once(cfg.delimiter),
        }
    };
    let Some((before, after)) = found else {
        if name.is_empty() {
            return Err(RealmError::EmptyUser);
        }
        return Ok(ParsedName { user: name, realm: None });
    };
    let (user, realm) = match cfg.position {
        RealmPosition::Suffix => (before, after),
        RealmPosition::Prefix => (after, before),
    };
    if user.is_empty() {
        return Err(RealmError::EmptyUser);
    }
    if realm.is_empty() {
        return Err(RealmError::EmptyRealm);
    }
    Ok(ParsedName { user: if cfg.strip { user } else { name }, realm: Some(realm) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(delimiter: char, split: Split, position: RealmPosition, strip: bool) -> RealmConfig {
        RealmConfig { delimiter, split, position, strip }
    }

    fn ok<'a>(user: &'a str, realm: Option<&'a str>) -> Result<ParsedName<'a>, RealmError> {
        Ok(ParsedName { user, realm })
    }

    #[test]
    fn default_config() {
        let d = RealmConfig::default();
        assert_eq!(d, cfg('@', Split::Last, RealmPosition::Suffix, true));
        assert_eq!(parse("alice@example.org", &d), ok("alice", Some("example.org")));
        assert_eq!(parse("alice", &d), ok("alice", None));
    }

    #[test]
    fn every_combination_single_delimiter() {
        // With one delimiter First and Last agree; position and strip decide.
        for split in [Split::First, Split::Last] {
            let suffix = cfg('@', split, RealmPosition::Suffix, true);
            assert_eq!(parse("alice@corp", &suffix), ok("alice", Some("corp")));
            let suffix_keep = cfg('@', split, RealmPosition::Suffix, false);
            assert_eq!(parse("alice@corp", &suffix_keep), ok("alice@corp", Some("corp")));
            let prefix = cfg('@', split, RealmPosition::Prefix, true);
            assert_eq!(parse("corp@alice", &prefix), ok("alice", Some("corp")));
            let prefix_keep = cfg('@', split, RealmPosition::Prefix, false);
            assert_eq!(parse("corp@alice", &prefix_keep), ok("corp@alice", Some("corp")));
        }
    }

    #[test]
    fn every_combination_multiple_delimiters() {
        let name = "a@b@c";
        let cases = [
            (Split::Last, RealmPosition::Suffix, true, "a@b", "c"),
            (Split::Last, RealmPosition::Suffix, false, "a@b@c", "c"),
            (Split::First, RealmPosition::Suffix, true, "a", "b@c"),
            (Split::First, RealmPosition::Suffix, false, "a@b@c", "b@c"),
            (Split::Last, RealmPosition::Prefix, true, "c", "a@b"),
            (Split::Last, RealmPosition::Prefix, false, "a@b@c", "a@b"),
            (Split::First, RealmPosition::Prefix, true, "b@c", "a"),
            (Split::First, RealmPosition::Prefix, false, "a@b@c", "a"),
        ];
        for (split, position, strip, user, realm) in cases {
            let c = cfg('@', split, position, strip);
            assert_eq!(parse(name, &c), ok(user, Some(realm)), "{c:?}");
        }
    }

    #[test]
    fn no_delimiter_every_combination() {
        for split in [Split::First, Split::Last] {
            for position in [RealmPosition::Suffix, RealmPosition::Prefix] {
                for strip in [true, false] {
                    let c = cfg('@', split, position, strip);
                    assert_eq!(parse("alice", &c), ok("alice", None), "{c:?}");
                    assert_eq!(parse("", &c), Err(RealmError::EmptyUser), "{c:?}");
                }
            }
        }
    }

    #[test]
    fn backslash_domain() {
        let c = cfg('\\', Split::First, RealmPosition::Prefix, true);
        assert_eq!(parse("CORP\\alice", &c), ok("alice", Some("CORP")));
        assert_eq!(parse("alice", &c), ok("alice", None));
        // First split: a backslash in the user part stays in the user part.
        assert_eq!(parse("CORP\\al\\ice", &c), ok("al\\ice", Some("CORP")));
        let keep = cfg('\\', Split::First, RealmPosition::Prefix, false);
        assert_eq!(parse("CORP\\alice", &keep), ok("CORP\\alice", Some("CORP")));
        // '@' is an ordinary character when the delimiter is a backslash.
        assert_eq!(parse("CORP\\alice@x", &c), ok("alice@x", Some("CORP")));
        assert_eq!(parse("\\alice", &c), Err(RealmError::EmptyRealm));
        assert_eq!(parse("CORP\\", &c), Err(RealmError::EmptyUser));
    }

    #[test]
    fn empty_parts() {
        let suffix = RealmConfig::default();
        assert_eq!(parse("@corp", &suffix), Err(RealmError::EmptyUser));
        assert_eq!(parse("alice@", &suffix), Err(RealmError::EmptyRealm));
        assert_eq!(parse("@", &suffix), Err(RealmError::EmptyUser));
        // Last split: "alice@@" has an empty realm after the last '@'.
        assert_eq!(parse("alice@@", &suffix), Err(RealmError::EmptyRealm));
        // ...but "alice@@corp" has user "alice@" and realm "corp".
        assert_eq!(parse("alice@@corp", &suffix), ok("alice@", Some("corp")));
        let first = cfg('@', Split::First, RealmPosition::Suffix, true);
        assert_eq!(parse("alice@@corp", &first), ok("alice", Some("@corp")));
        assert_eq!(parse("@alice@corp", &first), Err(RealmError::EmptyUser));
        // Empty parts are errors whether or not the realm is stripped.
        let keep = cfg('@', Split::Last, RealmPosition::Suffix, false);
        assert_eq!(parse("@corp", &keep), Err(RealmError::EmptyUser));
        assert_eq!(parse("alice@", &keep), Err(RealmError::EmptyRealm));
        let prefix = cfg('@', Split::Last, RealmPosition::Prefix, true);
        assert_eq!(parse("corp@", &prefix), Err(RealmError::EmptyUser));
        assert_eq!(parse("@alice", &prefix), Err(RealmError::EmptyRealm));
    }

    #[test]
    fn unicode_names() {
        let c = RealmConfig::default();
        assert_eq!(parse("jürgen@bücher.de", &c), ok("jürgen", Some("bücher.de")));
        assert_eq!(parse("名前@例え.jp", &c), ok("名前", Some("例え.jp")));
        assert_eq!(parse("😀", &c), ok("😀", None));
        // A multi-byte delimiter.
        let c = cfg('＠', Split::Last, RealmPosition::Suffix, true);
        assert_eq!(parse("ユーザー＠領域", &c), ok("ユーザー", Some("領域")));
        assert_eq!(parse("a@b", &c), ok("a@b", None));
        assert_eq!(parse("＠領域", &c), Err(RealmError::EmptyUser));
    }

    #[test]
    fn error_messages() {
        assert_eq!(RealmError::EmptyUser.to_string(), "user part is empty");
        assert_eq!(RealmError::EmptyRealm.to_string(), "realm part is empty");
    }
}

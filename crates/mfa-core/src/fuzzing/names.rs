//! User names (`user@realm`, `DOMAIN\user`) and the user map file.

use super::input::Input;
use super::one_log_line;
use crate::identity::realm::{self, RealmConfig, RealmError, RealmPosition, Split};
use crate::identity::usermap::UserMap;

/// First byte: the realm configuration (delimiter, split, position, strip);
/// the rest: the User-Name.
pub fn user_name(data: &[u8]) {
    let mut input = Input::new(data);
    let choice = input.byte();
    let delimiter = match choice & 3 {
        0 => '@',
        1 => '\\',
        // Any other delimiter must work as well (one of several bytes, or a multi-byte one).
        2 => '＠',
        _ => '.',
    };
    let cfg = RealmConfig {
        delimiter,
        split: if choice & 4 == 0 { Split::First } else { Split::Last },
        position: if choice & 8 == 0 { RealmPosition::Suffix } else { RealmPosition::Prefix },
        strip: choice & 16 == 0,
    };
    // The module refuses a User-Name that is not UTF-8 before realm handling.
    let Ok(name) = std::str::from_utf8(input.rest()) else { return };
    let result = realm::parse(name, &cfg);

    // The two sides of the splitting delimiter, found independently.
    let cut = match cfg.split {
        Split::First => name.find(delimiter),
        Split::Last => name.rfind(delimiter),
    };
    let Some(at) = cut else {
        let expected = if name.is_empty() {
            Err(RealmError::EmptyUser)
        } else {
            Ok(realm::ParsedName { user: name, realm: None })
        };
        assert_eq!(result, expected, "a name without delimiter is the user, whole");
        return;
    };
    let (before, after) = (&name[..at], &name[at + delimiter.len_utf8()..]);
    let (user, realm_part) = match cfg.position {
        RealmPosition::Suffix => (before, after),
        RealmPosition::Prefix => (after, before),
    };
    match result {
        Err(RealmError::EmptyUser) => assert!(user.is_empty()),
        Err(RealmError::EmptyRealm) => assert!(!user.is_empty() && realm_part.is_empty()),
        Ok(parsed) => {
            assert!(!user.is_empty() && !realm_part.is_empty());
            assert_eq!(parsed.realm, Some(realm_part));
            if cfg.strip {
                assert_eq!(parsed.user, user);
            } else {
                assert_eq!(parsed.user, name, "without strip the user is the whole name");
            }
            // Both parts are pieces of the name, around one delimiter.
            let rebuilt = match cfg.position {
                RealmPosition::Suffix => format!("{user}{delimiter}{realm_part}"),
                RealmPosition::Prefix => format!("{realm_part}{delimiter}{user}"),
            };
            assert_eq!(rebuilt, name);
            // The side away from the split holds no delimiter.
            match cfg.split {
                Split::First => assert!(!before.contains(delimiter)),
                Split::Last => assert!(!after.contains(delimiter)),
            }
        }
    }
}

/// The user map file: UTF-8 text (the loader reads it as a string).
pub fn user_map(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let map = match UserMap::parse(text) {
        Ok(map) => map,
        Err(e) => {
            assert!(e.starts_with("line "), "errors name the line: {e:?}");
            assert!(one_log_line(&e), "an error is one log line: {e:?}");
            return;
        }
    };
    let pairs = map_pairs(&map, text);
    // Nothing invented: every name is a piece of the file.
    for (from, to) in &pairs {
        assert!(text.contains(from.as_str()) && text.contains(to.as_str()));
        assert_eq!(map.get(from), Some(to.as_str()));
    }
    // Written back (quoted where a quote allows it) and read again, the map is the same.
    let mut written = String::new();
    for (from, to) in pairs.iter().rev() {
        written.push_str(&format!("{} {}\n", quoted(from), quoted(to)));
    }
    assert_eq!(UserMap::parse(&written).as_ref(), Ok(&map), "{written:?}");
}

/// The map's pairs: every RADIUS name of the file that maps, found by reading
/// each line's first word the simple way and asking the map.
fn map_pairs(map: &UserMap, text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let from = match line.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default(),
            None => line.split(char::is_whitespace).next().unwrap_or_default(),
        };
        let to = map.get(from).unwrap_or_else(|| panic!("{from:?} was read but does not map"));
        pairs.push((from.to_owned(), to.to_owned()));
    }
    assert_eq!(pairs.len(), map.len(), "one mapping a line");
    pairs
}

/// A name as the file writes it: in quotes unless it holds one (then it came
/// from a bare word and can be written bare again).
fn quoted(name: &str) -> String {
    if name.contains('"') {
        name.to_owned()
    } else {
        format!("\"{name}\"")
    }
}

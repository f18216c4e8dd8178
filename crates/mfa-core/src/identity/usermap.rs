//! The user map: RADIUS user names to token-store names, one pair a line.
//!
//! ```text
//! # radius name        token-store name
//! ALICE.SMITH          alice
//! "John Doe"           jdoe
//! ```
//! Names with spaces are written in double quotes. Lookups are exact.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct UserMap(HashMap<String, String>);

impl UserMap {
    pub fn get(&self, radius_name: &str) -> Option<&str> {
        self.0.get(radius_name).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parse(text: &str) -> Result<UserMap, String> {
        let mut map = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = words(line).map_err(|e| format!("line {}: {e}", index + 1))?;
            let [from, to] =
                <[String; 2]>::try_from(words).map_err(|_| format!("line {}: expected two names", index + 1))?;
            if map.insert(from.clone(), to).is_some() {
                // {:?}: a name's control characters must not break the log line.
                return Err(format!("line {}: {from:?} is mapped twice", index + 1));
            }
        }
        Ok(UserMap(map))
    }

    pub fn load(path: &Path) -> Result<UserMap, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Splits a line into bare or double-quoted words.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or("unterminated quote")?;
            words.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_and_quoted_names() {
        let map = UserMap::parse("# c\n\nALICE.SMITH alice\n\"John Doe\"   jdoe\n").unwrap();
        assert_eq!(map.get("ALICE.SMITH"), Some("alice"));
        assert_eq!(map.get("John Doe"), Some("jdoe"));
        assert_eq!(map.get("alice"), None);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        assert!(UserMap::parse("a b c").unwrap_err().contains("line 1"));
        assert!(UserMap::parse("ok fine\nlonely").unwrap_err().contains("line 2"));
        assert!(UserMap::parse("\"open b").unwrap_err().contains("quote"));
        assert!(UserMap::parse("a b\na c").unwrap_err().contains("twice"));
    }

    #[test]
    fn errors_stay_one_log_line() {
        // Found by fuzzing (fuzz/regressions/user_map/): the name was quoted raw.
        let error = UserMap::parse("\u{1b}[2Ja b\n\u{1b}[2Ja c").unwrap_err();
        assert_eq!(error, "line 2: \"\\u{1b}[2Ja\" is mapped twice");
    }
}

//! Reply attributes from what the second factor knows of the user: privacyIDEA's
//! answer (`detail.user.groups`, `detail.serial`, ...) or the local token store's
//! groups, turned into Class, Filter-Id or vendor attributes for the NAS.
//!
//! Each `reply <Attribute> { }` section is one rule: take the value(s) at
//! `from`, keep those that match `match` (the whole value; or, when the
//! expression has a group, its first group), or put `value` instead; then add
//! `prefix` and `suffix`. A list gives one attribute per matching element.

use regex::Regex;
use serde_json::Value;

/// The longest value one RADIUS attribute holds.
pub const MAX_VALUE: usize = 253;

#[derive(Clone, Debug)]
pub struct Rule {
    /// The RADIUS attribute, as the dictionary names it.
    pub attribute: String,
    /// The path in the answer's detail: `user.groups`, `serial`, `user-realm`.
    pub from: Vec<String>,
    pub pattern: Option<Regex>,
    /// A fixed value put when `from` matches.
    pub value: Option<String>,
    pub prefix: String,
    pub suffix: String,
}

pub use crate::config::reply::RawRule;
use crate::config::ConfigError;

impl Rule {
    /// Checks one section; the error names what is wrong (the caller names the section).
    pub fn from_raw(raw: &RawRule) -> Result<Rule, String> {
        let from = raw.from.as_deref().map(str::trim).filter(|f| !f.is_empty()).ok_or("'from' is required")?;
        let path: Vec<String> = from.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!("'from' \"{from}\" has an empty part"));
        }
        let pattern = match raw.pattern.as_deref() {
            Some(p) => Some(Regex::new(p).map_err(|e| format!("'match': {e}"))?),
            None => None,
        };
        Ok(Rule {
            attribute: raw.attribute.clone(),
            from: path,
            pattern,
            value: raw.value.clone(),
            prefix: raw.prefix.clone().unwrap_or_default(),
            suffix: raw.suffix.clone().unwrap_or_default(),
        })
    }

    /// The values this rule gives for `detail`, each at most [`MAX_VALUE`] bytes
    /// (longer ones are left out: a cut value could grant the wrong group).
    pub fn values(&self, detail: &Value) -> Vec<String> {
        let mut at = detail;
        for key in &self.from {
            match at.get(key) {
                Some(next) => at = next,
                None => return vec![],
            }
        }
        let items: Vec<&Value> = match at {
            Value::Array(list) => list.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::new();
        for item in items {
            let text = match item {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            let picked = match &self.pattern {
                None => text,
                // Without a group, `match` only filters: the value stays whole.
                Some(re) if re.captures_len() == 1 => {
                    if !re.is_match(&text) {
                        continue;
                    }
                    text
                }
                // With one, its first group is the value; when that group took no part
                // in the match there is none (never a part the rule did not pick).
                Some(re) => match re.captures(&text).and_then(|c| c.get(1)) {
                    Some(group) => group.as_str().to_string(),
                    None => continue,
                },
            };
            let value = format!("{}{}{}", self.prefix, self.value.as_deref().unwrap_or(&picked), self.suffix);
            if !value.is_empty() && value.len() <= MAX_VALUE && !out.contains(&value) {
                out.push(value);
            }
        }
        out
    }
}

/// The `reply` sections compiled, in order; the error names the section.
pub fn compile(raw: &[RawRule]) -> Result<Vec<Rule>, ConfigError> {
    raw.iter()
        .map(|rule| {
            Rule::from_raw(rule)
                .map_err(|message| ConfigError::new("reply", format!("reply {}: {message}", rule.attribute)))
        })
        .collect()
}

/// Every (attribute, value) the rules give, in rule order.
pub fn reply_attributes(rules: &[Rule], detail: &Value) -> Vec<(String, String)> {
    rules.iter().flat_map(|r| r.values(detail).into_iter().map(|v| (r.attribute.clone(), v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(
        attribute: &str,
        from: &str,
        pattern: Option<&str>,
        value: Option<&str>,
        prefix: &str,
        suffix: &str,
    ) -> Rule {
        Rule::from_raw(&RawRule {
            attribute: attribute.into(),
            from: Some(from.into()),
            pattern: pattern.map(Into::into),
            value: value.map(Into::into),
            prefix: Some(prefix.into()),
            suffix: Some(suffix.into()),
        })
        .unwrap()
    }

    #[test]
    fn lists_give_one_value_each_and_patterns_pick_their_group() {
        let detail = json!({"user": {"groups": ["vpn-admins", "staff", "vpn-sales"],
                                     "acl": "CN=sales-user,OU=sales,DC=example"},
                            "serial": "TOTP0001", "user-resolver": "deflocal"});
        assert_eq!(
            rule("Class", "user.groups", None, None, "", "").values(&detail),
            ["vpn-admins", "staff", "vpn-sales"]
        );
        assert_eq!(
            rule("Class", "user.groups", Some("^vpn-(.*)$"), None, "group=", ";").values(&detail),
            ["group=admins;", "group=sales;"]
        );
        assert_eq!(
            rule("Filter-Id", "user.acl", Some(r"CN=(\w*)-user,OU=sales"), None, "", "").values(&detail),
            ["sales"]
        );
        assert_eq!(
            rule("Filter-Id", "user-resolver", Some("^deflocal$"), Some("FIXEDValue"), "", "").values(&detail),
            ["FIXEDValue"]
        );
        assert_eq!(rule("Reply-Message", "serial", None, None, "token ", "").values(&detail), ["token TOTP0001"]);
        assert!(rule("Class", "user.missing", None, None, "", "").values(&detail).is_empty());
        assert!(rule("Class", "user", None, None, "", "").values(&detail).is_empty(), "an object gives nothing");
    }

    #[test]
    fn a_match_without_a_group_filters_and_keeps_the_whole_value() {
        let detail = json!({"user": {"groups": ["vpn-admins", "staff", "vpn-sales"]}});
        assert_eq!(
            rule("Class", "user.groups", Some("^vpn-"), None, "", "").values(&detail),
            ["vpn-admins", "vpn-sales"]
        );
        assert_eq!(
            rule("Class", "user.groups", Some("admins|staff"), None, "g=", "").values(&detail),
            ["g=vpn-admins", "g=staff"]
        );
        // A group that took no part in the match gives nothing, not the whole match.
        assert_eq!(
            rule("Class", "user.groups", Some("^vpn-(admins)$|^staff$"), None, "", "").values(&detail),
            ["admins"]
        );
    }

    #[test]
    fn too_long_values_are_left_out() {
        let detail = json!({"g": ["x".repeat(254), "ok"]});
        assert_eq!(rule("Class", "g", None, None, "", "").values(&detail), ["ok"]);
    }

    #[test]
    fn bad_rules_say_why() {
        let mut raw = RawRule { attribute: "Class".into(), ..RawRule::default() };
        assert!(Rule::from_raw(&raw).unwrap_err().contains("from"));
        raw.from = Some("user..groups".into());
        assert!(Rule::from_raw(&raw).unwrap_err().contains("empty part"));
        raw.from = Some("user.groups".into());
        raw.pattern = Some("(".into());
        assert!(Rule::from_raw(&raw).unwrap_err().contains("match"));
    }
}

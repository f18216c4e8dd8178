//! The README's configuration reference and the shipped mods-available/mfa name
//! every configuration item the module declares (`RawConfig::ITEMS`, the one
//! declaration the FreeRADIUS table is built from), each in its section, and the
//! README gives each declared default exactly.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use mfa_core::config::declare::paths;
use mfa_core::config::{RawConfig, Section};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `section.item` (or `item` at the top level) for every declared item, with its default.
fn declared() -> Vec<(String, Option<&'static str>)> {
    paths(RawConfig::ITEMS).into_iter().map(|(path, item)| (path, item.default)).collect()
}

/// The README's reference: for each row of its tables, the item's path and its default cell.
fn readme_rows() -> BTreeMap<String, String> {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("\n## Configuration reference").expect("a Configuration reference section");
    let end = readme[start + 1..].find("\n## ").map_or(readme.len(), |at| start + 1 + at);
    let mut rows = BTreeMap::new();
    // The top level's table, then one per "### `name { }`" heading; "sms and email" share one.
    let mut sections: Vec<String> = vec![String::new()];
    for line in readme[start..end].lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            sections = heading
                .split(" and ")
                .filter_map(|s| s.trim().strip_prefix('`')?.split(' ').next())
                .map(String::from)
                .collect();
            continue;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(name) = cells.first().and_then(|c| c.strip_prefix("| `")).and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        for section in &sections {
            let path = if section.is_empty() { name.to_string() } else { format!("{section}.{name}") };
            rows.insert(path, cells.get(1).copied().unwrap_or("").to_string());
        }
    }
    rows
}

#[test]
fn the_readme_gives_every_item_and_its_default() {
    let rows = readme_rows();
    for (path, default) in declared() {
        let cell = rows.get(&path).unwrap_or_else(|| panic!("README's configuration reference has no row for {path}"));
        if let Some(default) = default {
            assert!(
                cell.contains(&format!("`{default}`")),
                "README: {path}'s default is `{default}`, the row says {cell}"
            );
        }
    }
}

/// For each item path set or shown (maybe commented out) in the file, the section it is in.
fn shipped_items() -> Vec<String> {
    let text = fs::read_to_string(repo().join("freeradius-conf/mods-available/mfa")).unwrap();
    let mut stack: Vec<String> = Vec::new();
    let mut items = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let commented = line.starts_with('#');
        let body = line.trim_start_matches('#').trim();
        if !commented && body.ends_with('{') {
            stack.push(body.trim_end_matches('{').split_whitespace().next().unwrap_or("").to_string());
        } else if !commented && body == "}" {
            stack.pop();
        } else if let Some((name, _)) = body.split_once(" = ") {
            let name = name.trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                // Inside `mfa { }`: the path below it.
                let mut path: Vec<&str> = stack.iter().skip(1).map(String::as_str).collect();
                path.push(name);
                items.push(path.join("."));
            }
        }
    }
    items
}

#[test]
fn the_shipped_file_shows_every_item_in_its_section() {
    let shipped = shipped_items();
    for (path, _) in declared() {
        assert!(shipped.contains(&path), "freeradius-conf/mods-available/mfa does not show {path}");
    }
}

//! The parts of the configuration a CONF_PARSER table cannot hold: the
//! repeated `reply <Attribute> { }` sections and the `realms { }` pairs of
//! `privacyidea { }`, read from the module's CONF_SECTION.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use super::bindings::{
    cf_pair_attr, cf_pair_find_next, cf_pair_value, cf_section_name2, cf_section_sub_find, cf_subsection_find_next,
    dict_attrbyname, CONF_PAIR, CONF_SECTION,
};
use mfa_core::backend::mapping::RawRule;

/// # Safety
/// `p` is null or a NUL-terminated string owned by the configuration tree.
unsafe fn text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
}

/// Every `name = value` pair directly in `cs`, in order.
///
/// # Safety
/// `cs` is a live section of the configuration tree.
unsafe fn pairs(cs: *const CONF_SECTION) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut pair: *mut CONF_PAIR = ptr::null_mut();
    loop {
        pair = cf_pair_find_next(cs, pair, ptr::null());
        if pair.is_null() {
            return out;
        }
        if let Some(name) = text(cf_pair_attr(pair)) {
            out.push((name, text(cf_pair_value(pair))));
        }
    }
}

/// The `reply <Attribute> { from, match, value, prefix, suffix }` sections.
/// An error names the section and what is wrong with it.
///
/// # Safety
/// `conf` is the module instance's live section.
pub unsafe fn reply_rules(conf: *const CONF_SECTION) -> Result<Vec<RawRule>, String> {
    let mut rules = Vec::new();
    let mut cs: *mut CONF_SECTION = ptr::null_mut();
    loop {
        cs = cf_subsection_find_next(conf, cs, c"reply".as_ptr());
        if cs.is_null() {
            return Ok(rules);
        }
        let Some(attribute) = text(cf_section_name2(cs)) else {
            return Err("a reply section needs the attribute's name: reply Class { ... }".into());
        };
        let known = CString::new(attribute.as_str()).map(|c| !dict_attrbyname(c.as_ptr()).is_null());
        if known != Ok(true) {
            return Err(format!("reply {attribute}: no such attribute in the dictionary"));
        }
        let mut rule = RawRule { attribute: attribute.clone(), ..RawRule::default() };
        for (name, value) in pairs(cs) {
            let slot = match name.as_str() {
                "from" => &mut rule.from,
                "match" => &mut rule.pattern,
                "value" => &mut rule.value,
                "prefix" => &mut rule.prefix,
                "suffix" => &mut rule.suffix,
                _ => {
                    return Err(format!(
                        "reply {attribute}: unknown item '{name}' (from, match, value, prefix, suffix)"
                    ))
                }
            };
            *slot = value;
        }
        rules.push(rule);
    }
}

/// The `realms { radius_realm = privacyidea_realm }` pairs of `privacyidea { }`.
///
/// # Safety
/// `conf` is the module instance's live section.
pub unsafe fn privacyidea_realms(conf: *const CONF_SECTION) -> Vec<(String, String)> {
    let pi = cf_section_sub_find(conf, c"privacyidea".as_ptr());
    if pi.is_null() {
        return vec![];
    }
    let realms = cf_section_sub_find(pi, c"realms".as_ptr());
    if realms.is_null() {
        return vec![];
    }
    pairs(realms).into_iter().map(|(from, to)| (from, to.unwrap_or_default())).collect()
}

//! The FreeRADIUS side of the post-auth check (mfa_core::engine::post_auth): the
//! handles inner tunnels leave in the outer login's session-state, and the start-up
//! look at the sites for a use of the module without its post-auth check.

use std::ffi::{c_char, CStr};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::bindings::{
    cf_item_find_next, cf_item_is_pair, cf_item_is_section, cf_item_to_pair, cf_item_to_section, cf_pair_attr,
    cf_section_name1, cf_section_name2, cf_section_sub_find, cf_subsection_find_next, cf_top_section, dict_addattr,
    dict_attrbyname, ATTR_FLAGS, CONF_ITEM, CONF_SECTION, PW_TYPE_PW_TYPE_OCTETS,
};
use super::request::Request;
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::engine::post_auth::{stored, Handle, Logins, Record};
use mfa_core::engine::Level;

/// The internal attribute (never on the wire: FreeRADIUS numbers it past 255) that
/// holds the handles in session-state.
const ATTRIBUTE: &CStr = c"Rlm-Mfa-Login";

/// Its number, once registered (0 before).
static ATTRIBUTE_NUMBER: AtomicU32 = AtomicU32::new(0);

/// The records behind the handles, for every instance and across HUPs.
static LOGINS: Logins = Logins::new();

/// Adds the attribute to the dictionary (once per process); an error says why not.
pub fn register_attribute() -> Result<(), String> {
    if ATTRIBUTE_NUMBER.load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    // SAFETY: instantiate runs in the server's main thread; dict_addattr with -1 adds
    // an internal attribute unless one of that name exists. Flags all zero: a plain one.
    unsafe {
        if dict_attrbyname(ATTRIBUTE.as_ptr()).is_null() {
            let flags: ATTR_FLAGS = std::mem::zeroed();
            if dict_addattr(ATTRIBUTE.as_ptr(), -1, 0, PW_TYPE_PW_TYPE_OCTETS, flags) < 0 {
                return Err("cannot add the internal attribute Rlm-Mfa-Login to the dictionary".into());
            }
        }
        let da = dict_attrbyname(ATTRIBUTE.as_ptr());
        if da.is_null() || (*da).vendor != 0 || (*da).attr <= 255 {
            return Err("the dictionary's Rlm-Mfa-Login is not an internal attribute".into());
        }
        ATTRIBUTE_NUMBER.store((*da).attr, Ordering::Release);
    }
    Ok(())
}

fn attribute() -> u32 {
    ATTRIBUTE_NUMBER.load(Ordering::Acquire)
}

/// This instance's handle in the outer login's session-state, if it has one.
fn own_handle(request: &Request<'_>, instance: &str) -> Option<Handle> {
    LOGINS.own(&request.root_state_values(attribute()), instance)
}

fn add_handle(request: &mut Request<'_>, instance: &str, user: &str, verified: bool) -> bool {
    let Some(handle) = LOGINS.open(instance, user, verified, SystemClock.now()) else { return false };
    if request.add_root_state(attribute(), &stored(&handle, instance)) {
        return true;
    }
    LOGINS.take(&handle);
    false
}

/// An inner request of a user who must present a second factor: the outer login
/// learns that its Accept needs the inner tunnel's verification.
pub fn inner_required(request: &mut Request<'_>, instance: &str, user: &str) {
    if own_handle(request, instance).is_none() && !add_handle(request, instance, user, false) {
        request
            .log(Level::Warn, "cannot record the inner user in the outer session-state: the outer check decides alone");
    }
}

/// The module accepted an inner request: the outer login's Accept may go through.
pub fn inner_verified(request: &mut Request<'_>, instance: &str, user: &str) {
    let done = match own_handle(request, instance) {
        Some(handle) => LOGINS.verify(&handle, user),
        None => false,
    };
    if !done && !add_handle(request, instance, user, true) {
        request.log(
            Level::Error,
            "cannot record the verification in the outer session-state: the outer Accept will be refused",
        );
    }
}

/// The records this instance's inner tunnels left for this (outer) login, taken:
/// each counts for one Accept. A handle whose record is gone comes back marked so,
/// and the Accept is refused.
pub fn outer_records(request: &Request<'_>, instance: &str) -> Vec<Record> {
    LOGINS.take_all(&request.root_state_values(attribute()), instance)
}

/// # Safety
/// `p` is null or a NUL-terminated string owned by the configuration tree.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

/// Whether `cs` (recursively) calls the module `name`: `name`, `name.method`, or
/// `-name`, as a bare word (a pair without value) in the section or a subsection.
///
/// # Safety
/// `cs` is null or a live section of the configuration tree.
unsafe fn calls(cs: *const CONF_SECTION, name: &str) -> bool {
    if cs.is_null() {
        return false;
    }
    let mut item: *mut CONF_ITEM = ptr::null_mut();
    loop {
        item = cf_item_find_next(cs, item);
        if item.is_null() {
            return false;
        }
        let word = if cf_item_is_pair(item) {
            text(cf_pair_attr(cf_item_to_pair(item)))
        } else if cf_item_is_section(item) {
            let sub = cf_item_to_section(item);
            // A module called with actions: `mfa { reject = 1 }`.
            let first = text(cf_section_name1(sub));
            if calls(sub, name) {
                return true;
            }
            first
        } else {
            continue;
        };
        let word = word.trim_start_matches('-');
        if word == name || word.split_once('.').is_some_and(|(module, _)| module == name) {
            return true;
        }
    }
}

/// The virtual servers that use the module `name` in authorize or authenticate but
/// not in post-auth: there an Accept through another path is not checked.
///
/// # Safety
/// `conf` is the module instance's live section.
pub unsafe fn unchecked_servers(conf: *mut CONF_SECTION, name: &str) -> Vec<String> {
    let top = cf_top_section(conf);
    let mut out = Vec::new();
    if top.is_null() {
        return out;
    }
    let mut server: *mut CONF_SECTION = ptr::null_mut();
    loop {
        server = cf_subsection_find_next(top, server, c"server".as_ptr());
        if server.is_null() {
            return out;
        }
        let uses = calls(cf_section_sub_find(server, c"authorize".as_ptr()), name)
            || calls(cf_section_sub_find(server, c"authenticate".as_ptr()), name);
        if uses && !calls(cf_section_sub_find(server, c"post-auth".as_ptr()), name) {
            out.push(text(cf_section_name2(server)));
        }
    }
}

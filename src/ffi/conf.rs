//! The CONF_PARSER table FreeRADIUS parses an `mfa { }` section with, built once
//! per process from the core's declarations (`RawConfig::ITEMS`), so that an
//! item is declared in one place only, and the reading of what it filled.
//!
//! The table writes into an array of 8-byte slots, one per item in declaration
//! order (depth first), not into the instance: strings as `char const *` owned
//! by the configuration tree (never freed here), booleans as one byte, each at
//! the start of its slot. Integers are declared to FreeRADIUS as strings and
//! read here strictly ([`parse_integer`]): its own integer parsing takes `five`
//! for 0 without an error.

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::OnceLock;

use super::bindings::{
    cf_section_parse, main_config, CONF_PARSER, CONF_SECTION, PW_TYPE_PW_TYPE_BOOLEAN, PW_TYPE_PW_TYPE_STRING,
    PW_TYPE_SUBSECTION,
};
use mfa_core::config::declare::{parse_integer, paths};
use mfa_core::config::{ConfigError, Item, Kind, RawConfig, Section, Value};
use mfa_core::engine::Backend;
use mfa_core::stats::{Counters, Writer};

/// The instance memory FreeRADIUS allocates (zeroed: no engine yet).
#[repr(C)]
pub struct Instance {
    /// Set by instantiate (Arc::into_raw), released by detach.
    pub engine: *const Backend,
    /// With `stats { file }`: the instance name's counters (they live as long as the
    /// process); null when the counters are off.
    pub counters: *const Counters,
    /// With `stats { file }`: the thread writing them (Box::into_raw), stopped by detach.
    pub stats_writer: *mut Writer,
}

/// One item's room in the parsed values.
type Slot = u64;
const SLOT: usize = std::mem::size_of::<Slot>();

const STRING: i32 = PW_TYPE_PW_TYPE_STRING as i32;
const BOOLEAN: i32 = PW_TYPE_PW_TYPE_BOOLEAN as i32;
const SUBSECTION: i32 = PW_TYPE_SUBSECTION as i32;
/// PW_TYPE_SECRET: the value is shown only at debug level 3 and above.
const SECRET: i32 = 1 << 13;

const END: CONF_PARSER =
    CONF_PARSER { name: ptr::null(), type_: -1, offset: 0, data: ptr::null_mut(), dflt: ptr::null() };

/// The rows, made once and never freed or written again.
struct Table(&'static [CONF_PARSER]);
// SAFETY: the rows point at leaked C strings and leaked subtables, only read after they are made.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

static TABLE: OnceLock<Table> = OnceLock::new();

fn table() -> &'static [CONF_PARSER] {
    TABLE
        .get_or_init(|| {
            let mut next_slot = 0;
            Table(rows(RawConfig::ITEMS, &mut next_slot))
        })
        .0
}

fn leaked(text: &str) -> *const c_char {
    // Declared names and defaults hold no NUL; a test checks every one.
    CString::new(text).expect("no NUL in a declaration").into_raw()
}

/// The rows of one section, its subsections' tables leaked beside it.
fn rows(items: &'static [Item], next_slot: &mut usize) -> &'static [CONF_PARSER] {
    let mut rows: Vec<CONF_PARSER> = items
        .iter()
        .map(|item| {
            let (type_, offset, dflt) = match item.kind {
                Kind::Section(sub) => (SUBSECTION, 0, rows(sub, next_slot).as_ptr() as *const c_void),
                kind => {
                    let type_ = if kind == Kind::Boolean { BOOLEAN } else { STRING };
                    let offset = *next_slot * SLOT;
                    *next_slot += 1;
                    let dflt = item.default.map_or(ptr::null(), |d| leaked(d) as *const c_void);
                    (if item.secret { type_ | SECRET } else { type_ }, offset, dflt)
                }
            };
            CONF_PARSER { name: leaked(item.name), type_, offset, data: ptr::null_mut(), dflt }
        })
        .collect();
    rows.push(END);
    Box::leak(rows.into_boxed_slice())
}

/// Why a section could not be read.
pub enum ParseError {
    /// FreeRADIUS refused a value; it has logged why.
    Refused,
    /// A value FreeRADIUS took that the module does not.
    Invalid(ConfigError),
}

/// Parses `conf` (the section as it is now: a HUP passes the new one) into the
/// raw items.
///
/// # Safety
/// `conf` is a live section of the configuration tree.
pub unsafe fn parse(conf: *mut CONF_SECTION) -> Result<RawConfig, ParseError> {
    let items = paths(RawConfig::ITEMS);
    let mut slots: Vec<Slot> = vec![0; items.len()];
    if cf_section_parse(conf, slots.as_mut_ptr() as *mut c_void, table().as_ptr()) < 0 {
        return Err(ParseError::Refused);
    }
    let mut values = Vec::with_capacity(slots.len());
    for ((path, item), slot) in items.iter().zip(&slots) {
        values.push(read(path, item, slot).map_err(ParseError::Invalid)?);
    }
    let mut raw = RawConfig::from_values(&mut values.into_iter());
    raw.server_max_request_time = server_max_request_time();
    Ok(raw)
}

/// The value the parser left in one item's slot.
fn read(path: &str, item: &Item, slot: &Slot) -> Result<Value, ConfigError> {
    let at = slot as *const Slot;
    // SAFETY: the parser wrote this slot as the row for this item says (or left it
    // zeroed): a one-byte bool at its start, or a string pointer owned by the
    // configuration tree, which outlives this call.
    Ok(unsafe {
        match item.kind {
            Kind::Boolean => Value::Boolean(*(at as *const u8) != 0),
            Kind::Integer => match text(*(at as *const *const c_char)) {
                Some(written) => Value::Integer(parse_integer(&written).map_err(|e| ConfigError::new(path, e))?),
                None => Value::default_of(item),
            },
            _ => Value::Text(text(*(at as *const *const c_char))),
        }
    })
}

/// A configuration string, or None when the item is absent.
///
/// # Safety
/// `p` is null or a NUL-terminated string that lives as long as the configuration.
unsafe fn text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
}

/// The server's `max_request_time`, which a push wait must end before.
fn server_max_request_time() -> u32 {
    // SAFETY: a global the server fills from radiusd.conf before it instantiates modules,
    // and only reads afterwards.
    unsafe { main_config.max_request_time }
}

//! A thin safe view of a FreeRADIUS `REQUEST` for one callback.
//!
//! It reads attributes, writes reply and control attributes, keeps module data
//! with the request, and logs through `radlog_request` with a constant "%s"
//! format, so that nothing a user sent is ever read as a format.

use std::borrow::Cow;
use std::ffi::{c_char, c_void, CString};
use std::marker::PhantomData;
use std::sync::{PoisonError, RwLock};

use super::attributes::Attributes;
use super::bindings::{
    dict_valbyattr, dict_valbyname, fr_pair_add, fr_pair_afrom_num, fr_pair_delete_by_num, fr_pair_find_by_num,
    fr_pair_make, fr_pair_replace, fr_pair_value_bstrncpy, fr_pair_value_memcpy, fr_token_t_T_OP_ADD,
    fr_token_t_T_OP_SET, log_lvl_L_DBG_LVL_2, log_lvl_L_DBG_LVL_OFF, log_type_L_DBG, log_type_L_ERR, log_type_L_INFO,
    log_type_L_WARN, rad_debug_lvl, radlog_request, request_data_add, request_data_get, talloc_strndup,
    value_type_VT_DATA, PW_AUTH_TYPE, PW_CODE_PW_CODE_ACCESS_CHALLENGE, PW_EAP_TYPE, PW_REALM, PW_REPLY_MESSAGE,
    PW_STATE, PW_STRIPPED_USER_NAME, REQUEST, TAG_ANY, VALUE_PAIR,
};
use mfa_core::engine::Level;
use mfa_core::text::cut;

/// The longest value of a RADIUS string attribute.
const MAX_ATTR_LEN: usize = 253;

/// Which attribute list of the request.
#[derive(Clone, Copy)]
pub enum List {
    Request,
    Control,
}

pub struct Request<'a> {
    raw: *mut REQUEST,
    _lifetime: PhantomData<&'a mut REQUEST>,
}

impl<'a> Request<'a> {
    /// # Safety
    /// `raw` is null or the request FreeRADIUS passed to the running callback,
    /// valid and used by this thread alone until the callback returns.
    pub unsafe fn from_raw(raw: *mut REQUEST) -> Option<Request<'a>> {
        if raw.is_null() || (*raw).packet.is_null() || (*raw).reply.is_null() {
            return None;
        }
        Some(Request { raw, _lifetime: PhantomData })
    }

    pub(super) fn list_head(&self, list: List) -> *mut *mut VALUE_PAIR {
        // SAFETY: `raw` and its packet are valid (from_raw).
        unsafe {
            match list {
                List::Request => &mut (*(*self.raw).packet).vps,
                List::Control => &mut (*self.raw).config,
            }
        }
    }

    /// The first pair of a standard attribute in `list`, or null.
    fn find(&self, list: List, attr: u32) -> *mut VALUE_PAIR {
        // SAFETY: the list head is valid; the server's lookup walks it read-only.
        unsafe { fr_pair_find_by_num(*self.list_head(list), attr, 0, TAG_ANY as i8) }
    }

    /// The bytes of a string or octets attribute (User-Password arrives decoded).
    /// They borrow the request: a `&mut self` method that replaces or frees the
    /// attribute cannot run while they are held.
    pub fn bytes(&self, list: List, attr: u32) -> Option<&[u8]> {
        let vp = self.find(list, attr);
        // SAFETY: a pair of the request's list, string or octets, alive while `self` is borrowed.
        (!vp.is_null()).then(|| unsafe { pair_bytes(vp) })
    }

    /// The name of `control:Auth-Type`'s value, if one is set.
    pub fn auth_type(&self) -> Option<String> {
        let vp = self.find(List::Control, PW_AUTH_TYPE);
        if vp.is_null() {
            return None;
        }
        // SAFETY: Auth-Type is an integer pair; the dictionary value lives as long as the server.
        unsafe {
            let value = (*vp).data.integer;
            let dv = dict_valbyattr(PW_AUTH_TYPE, 0, value as i32);
            if dv.is_null() {
                return Some(value.to_string());
            }
            let name = (*dv).name.as_ptr();
            Some(std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned())
        }
    }

    /// Sets `control:Auth-Type := name`: the pair made as an integer, from the value the
    /// dictionary gives the name (what fr_pair_make does, without looking the attribute up
    /// by name and parsing the value as text on every login: most of its cost).
    pub fn set_auth_type(&mut self, name: &str) -> bool {
        let Some(value) = auth_type_value(name) else {
            return false; // no "Auth-Type <name> { }" section declared the value
        };
        // SAFETY: the new pair is a talloc child of the request, and the control list,
        // which then owns it, is the request's.
        unsafe {
            let vp = fr_pair_afrom_num(self.raw as *mut c_void, PW_AUTH_TYPE, 0);
            if vp.is_null() {
                return false;
            }
            (*vp).op = fr_token_t_T_OP_SET;
            (*vp).data.integer = value;
            (*vp).length = std::mem::size_of::<u32>();
            (*vp).type_ = value_type_VT_DATA;
            fr_pair_replace(&mut (*self.raw).config, vp);
            true
        }
    }

    /// Creates or replaces a string attribute in the request list, byte for byte
    /// (no unescaping, unlike fr_pair_make).
    pub fn set_request_string(&mut self, attr: u32, value: &str) -> bool {
        let value = cut(value, MAX_ATTR_LEN);
        // SAFETY: the new pair is allocated under the request packet, which owns the list.
        unsafe {
            let packet = (*self.raw).packet;
            let vp = fr_pair_afrom_num(packet as *mut c_void, attr, 0);
            if vp.is_null() {
                return false;
            }
            fr_pair_value_bstrncpy(vp, value.as_ptr() as *const c_void, value.len());
            fr_pair_replace(&mut (*packet).vps, vp);
            if attr == PW_STRIPPED_USER_NAME {
                // Like rlm_realm: later modules read request->username.
                (*self.raw).username = vp;
            }
            true
        }
    }

    pub fn set_stripped_user_name(&mut self, value: &str) -> bool {
        self.set_request_string(PW_STRIPPED_USER_NAME, value)
    }

    pub fn set_realm(&mut self, value: &str) -> bool {
        self.set_request_string(PW_REALM, value)
    }

    /// Overwrites the value of an existing string attribute of the request list in place.
    pub fn overwrite_request_string(&mut self, attr: u32, value: &str) -> bool {
        let vp = self.find(List::Request, attr);
        if vp.is_null() {
            return false;
        }
        // SAFETY: `vp` is a live pair of this request; bstrncpy reallocates its value under it.
        unsafe { fr_pair_value_bstrncpy(vp, value.as_ptr() as *const c_void, value.len()) };
        true
    }

    /// The request authenticator (the CHAP challenge when there is no CHAP-Challenge).
    pub fn authenticator(&self) -> [u8; 16] {
        // SAFETY: the packet is valid (from_raw); `vector` is a plain array in it.
        unsafe { (*(*self.raw).packet).vector }
    }

    /// Who is asking: the packet's source address, NAS-IP-Address and NAS-Identifier
    /// (from `attributes`), which a challenge's State is bound to.
    pub fn nas_identity(&self, attributes: &Attributes<'_>) -> NasIdentity {
        // SAFETY: the packet is valid; the union member read is the one `af` names.
        let source = unsafe {
            let addr = &(*(*self.raw).packet).src_ipaddr;
            match addr.af {
                libc_af::INET => std::net::Ipv4Addr::from(u32::from_be(addr.ipaddr.ip4addr.s_addr)).to_string(),
                libc_af::INET6 => std::net::Ipv6Addr::from(addr.ipaddr.ip6addr.__in6_u.__u6_addr8).to_string(),
                other => format!("af{other}"),
            }
        };
        let ip = attributes.nas_ip_address.map(|a| std::net::Ipv4Addr::from(a).to_string()).unwrap_or_default();
        let id = attributes.nas_identifier.map(String::from_utf8_lossy).unwrap_or_default().into_owned();
        NasIdentity { source, ip, id }
    }

    /// The client's shortname (clients.conf), for the push message.
    pub fn client_name(&self) -> String {
        // SAFETY: the request's client lives as long as the request; shortname is a C string or null.
        unsafe {
            let client = (*self.raw).client;
            if client.is_null() || (*client).shortname.is_null() {
                return String::new();
            }
            std::ffi::CStr::from_ptr((*client).shortname).to_string_lossy().into_owned()
        }
    }

    /// The value of an integer attribute.
    fn integer(&self, list: List, attr: u32) -> Option<u32> {
        let vp = self.find(list, attr);
        // SAFETY: a pair of the request's list, or null.
        unsafe { (!vp.is_null()).then(|| pair_integer(vp)).flatten() }
    }

    /// Answers with Access-Challenge carrying `state`.
    pub fn set_challenge(&mut self, state: &[u8]) -> bool {
        // SAFETY: the reply packet owns its list and is the talloc parent of the new pair.
        unsafe {
            let reply = (*self.raw).reply;
            let vp = fr_pair_afrom_num(reply as *mut c_void, PW_STATE, 0);
            if vp.is_null() {
                return false;
            }
            fr_pair_value_memcpy(vp, state.as_ptr(), state.len());
            fr_pair_replace(&mut (*reply).vps, vp);
            (*reply).code = PW_CODE_PW_CODE_ACCESS_CHALLENGE;
            true
        }
    }

    /// Adds a Reply-Message, cut at 253 bytes on a character boundary.
    pub fn add_reply_message(&mut self, text: &str) -> bool {
        let text = cut(text, MAX_ATTR_LEN);
        // SAFETY: the reply packet owns its list and is the talloc parent of the new pair.
        unsafe {
            let reply = (*self.raw).reply;
            let vp = fr_pair_afrom_num(reply as *mut c_void, PW_REPLY_MESSAGE, 0);
            if vp.is_null() {
                return false;
            }
            fr_pair_value_bstrncpy(vp, text.as_ptr() as *const c_void, text.len());
            fr_pair_add(&mut (*reply).vps, vp);
            true
        }
    }

    /// Adds `name = value` to the reply, the value parsed by the dictionary's type
    /// for `name` (a `reply` rule's attribute, checked at start-up). False when the
    /// value does not parse as that type.
    pub fn add_reply_attribute(&mut self, name: &str, value: &str) -> bool {
        let (Ok(name), Ok(value)) = (CString::new(name), CString::new(value)) else { return false };
        // SAFETY: the reply packet owns its list and is the talloc parent of the new pair;
        // both strings are NUL-terminated and outlive the call (fr_pair_make copies them).
        unsafe {
            let reply = (*self.raw).reply;
            !fr_pair_make(reply as *mut c_void, &mut (*reply).vps, name.as_ptr(), value.as_ptr(), fr_token_t_T_OP_ADD)
                .is_null()
        }
    }

    /// Keeps `value` with the request under the module instance `name`, until
    /// [`Request::take_stash`]: keyed by name, not by instance memory, so that
    /// authenticate finds it even when a HUP replaced the instance in between.
    pub fn stash(&mut self, name: &str, value: &str) -> bool {
        let (key, tag) = stash_key(Slot::Code, name);
        // "123456<NUL>junk" stays a malformed code instead of coming back as "123456".
        let value = escape_nul(value);
        // SAFETY: the copy is a talloc child of the request, freed with it at the latest.
        unsafe {
            let copy = talloc_strndup(self.raw as *const c_void, value.as_ptr() as *const c_char, value.len());
            if copy.is_null() {
                return false;
            }
            request_data_add(self.raw, key, tag, copy as *mut c_void, true) == 0
        }
    }

    /// Takes (removes) what [`Request::stash`] kept.
    pub fn take_stash(&mut self, name: &str) -> Option<String> {
        let (key, tag) = stash_key(Slot::Code, name);
        // SAFETY: under this key there is only ever a string `stash` copied (marks use
        // the other slots).
        unsafe {
            let p = request_data_get(self.raw, key, tag) as *const c_char;
            if p.is_null() {
                return None;
            }
            Some(std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    }

    /// Leaves a mark with the request in `slot`, holding nothing: no copy to allocate.
    /// [`Request::take_mark`] takes it.
    pub fn keep_mark(&mut self, slot: Slot, name: &str) -> bool {
        let (key, tag) = stash_key(slot, name);
        // SAFETY: the data is the key itself, one of this library's statics, which the
        // request never frees (free_opaque false).
        unsafe { request_data_add(self.raw, key, tag, key, false) == 0 }
    }

    /// Takes (removes) a mark [`Request::keep_mark`] left in `slot`: whether there was one.
    pub fn take_mark(&mut self, slot: Slot, name: &str) -> bool {
        let (key, tag) = stash_key(slot, name);
        // SAFETY: a lookup (and removal) in the request's own data list.
        unsafe { !request_data_get(self.raw, key, tag).is_null() }
    }

    /// FreeRADIUS's number of the request (counted up per request the server
    /// takes in; an inner-tunnel request has its outer one's).
    pub fn number(&self) -> u64 {
        // SAFETY: a field of a valid request.
        unsafe { u64::from((*self.raw).number) }
    }

    /// Whether the request is an inner-tunnel one (EAP-TTLS, PEAP): it has a parent.
    pub fn is_inner(&self) -> bool {
        // SAFETY: a field of a valid request.
        unsafe { !(*self.raw).parent.is_null() }
    }

    /// The reply's code so far (0 when none is set).
    pub fn reply_code(&self) -> u32 {
        // SAFETY: the reply is valid (from_raw).
        unsafe { (*(*self.raw).reply).code }
    }

    /// The name of the request's virtual server.
    pub fn server(&self) -> String {
        // SAFETY: `server` is null or a string of the configuration, alive while the server runs.
        unsafe {
            let p = (*self.raw).server;
            if p.is_null() {
                return String::new();
            }
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }

    /// The name of the request's EAP-Type (rlm_eap sets it), if any.
    pub fn eap_type(&self) -> Option<String> {
        let value = self.integer(List::Request, PW_EAP_TYPE)?;
        // SAFETY: the dictionary value lives as long as the server.
        unsafe {
            let dv = dict_valbyattr(PW_EAP_TYPE, 0, value as i32);
            if dv.is_null() {
                return Some(value.to_string());
            }
            Some(std::ffi::CStr::from_ptr((*dv).name.as_ptr()).to_string_lossy().into_owned())
        }
    }

    /// The outermost request: the request itself outside a tunnel.
    fn root(&self) -> *mut REQUEST {
        let mut r = self.raw;
        // SAFETY: parents outlive their inner requests, which run synchronously inside them.
        unsafe {
            while !(*r).parent.is_null() {
                r = (*r).parent;
            }
        }
        r
    }

    /// The values of `attr` (octets) in the outermost request's session-state.
    pub fn root_state_values(&self, attr: u32) -> Vec<Vec<u8>> {
        let root = self.root();
        let mut out = Vec::new();
        // SAFETY: the root is live (see root); the list is walked read-only, each pair's
        // `da` is its dictionary entry, and octets pairs keep `length` bytes at `octets`.
        unsafe {
            let mut vp = (*root).state;
            while !vp.is_null() {
                let da = (*vp).da;
                if !da.is_null() && (*da).attr == attr && (*da).vendor == 0 {
                    let data = (*vp).data.octets;
                    if !data.is_null() {
                        out.push(std::slice::from_raw_parts(data, (*vp).length).to_vec());
                    }
                }
                vp = (*vp).next;
            }
        }
        out
    }

    /// Adds `attr = value` to the outermost request's session-state, which FreeRADIUS
    /// keeps from round to round of the login (and drops with it).
    pub fn add_root_state(&mut self, attr: u32, value: &[u8]) -> bool {
        let root = self.root();
        // SAFETY: the pair is allocated under the session-state's own context, as the
        // server's `update session-state` does, and added to the list it owns.
        unsafe {
            let ctx = (*root).state_ctx;
            if ctx.is_null() {
                return false;
            }
            let vp = fr_pair_afrom_num(ctx, attr, 0);
            if vp.is_null() {
                return false;
            }
            fr_pair_value_memcpy(vp, value.as_ptr(), value.len());
            fr_pair_add(&mut (*root).state, vp);
            true
        }
    }

    /// Removes every `attr` of `vendor` from the reply.
    pub fn delete_reply(&mut self, attr: u32, vendor: u32) {
        // SAFETY: the reply owns its list; the server's delete frees the pairs it removes.
        unsafe { fr_pair_delete_by_num(&mut (*(*self.raw).reply).vps, attr, vendor, TAG_ANY as i8) };
    }

    pub fn log(&self, level: Level, text: &str) {
        if level == Level::Debug && !self.debug_enabled() {
            return;
        }
        // SAFETY: `raw` is valid for this callback.
        unsafe { log_raw(self.raw, level, text) }
    }

    /// Whether the server would print debug lines for this request (radiusd -X, or a
    /// request marked for debugging): saves the work of logging them otherwise.
    pub fn debug_enabled(&self) -> bool {
        // SAFETY: a global the server sets at start-up, and a field of a valid request.
        unsafe { rad_debug_lvl >= log_lvl_L_DBG_LVL_2 || (*self.raw).log.lvl >= log_lvl_L_DBG_LVL_2 }
    }
}

/// `text` with each NUL written as `\0`, since a C string ends at its first; a copy
/// only when there is one.
pub(super) fn escape_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\\0"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Logs one line against a request.
///
/// # Safety
/// `raw` is a valid request, or null (then nothing is logged).
pub unsafe fn log_raw(raw: *mut REQUEST, level: Level, text: &str) {
    if raw.is_null() {
        return;
    }
    let (kind, lvl) = match level {
        Level::Debug => (log_type_L_DBG, log_lvl_L_DBG_LVL_2),
        Level::Info => (log_type_L_INFO, log_lvl_L_DBG_LVL_OFF),
        Level::Warn => (log_type_L_WARN, log_lvl_L_DBG_LVL_OFF),
        Level::Error => (log_type_L_ERR, log_lvl_L_DBG_LVL_OFF),
    };
    let text = CString::new(escape_nul(text).as_bytes()).unwrap_or_default();
    radlog_request(kind, lvl, raw, c"%s".as_ptr(), text.as_ptr());
}

/// The bytes of a string or octets pair: `length` bytes at `data.strvalue` until the
/// pair is changed or freed, which only `&mut` methods of [`Request`] do.
///
/// # Safety
/// `vp` is a valid pair of a string or octets attribute, alive for `'r`.
pub(super) unsafe fn pair_bytes<'r>(vp: *const VALUE_PAIR) -> &'r [u8] {
    let data = (*vp).data.strvalue as *const u8;
    if data.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(data, (*vp).length)
}

/// The value of an integer pair (`data.integer`); `None` for a malformed attribute
/// decoded as octets, whose length is not 4.
///
/// # Safety
/// `vp` is a valid pair.
pub(super) unsafe fn pair_integer(vp: *const VALUE_PAIR) -> Option<u32> {
    ((*vp).length == 4).then(|| (*vp).data.integer)
}

/// Who sent a request: the packet's source address, NAS-IP-Address, NAS-Identifier.
pub struct NasIdentity {
    source: String,
    ip: String,
    id: String,
}

impl NasIdentity {
    /// The packet's source address: the NAS as privacyIDEA's `client`.
    pub fn address(&self) -> &str {
        &self.source
    }

    /// All three, for binding a challenge to the NAS.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.source, self.ip, self.id)
    }

    /// The NAS's name for a message: NAS-Identifier, else NAS-IP-Address, else the address.
    pub fn name(&self) -> String {
        [&self.id, &self.ip, &self.source].into_iter().find(|p| !p.is_empty()).cloned().unwrap_or_default()
    }
}

/// What the module keeps with a request.
#[derive(Clone, Copy)]
pub enum Slot {
    /// The code split off in authorize (or at authenticate, EAP-GTC).
    Code,
    /// authorize saw an EAP request without the typed text.
    Pending,
    /// authenticate accepted this request.
    Verified,
}

/// The Auth-Type values looked up so far, by name. FreeRADIUS adds one to the dictionary
/// for each `Auth-Type <name> { }` section as it loads the sites and never changes or
/// removes it, so a value once found stays right. A handful of names at most (the
/// instances' own, "Accept"). A static, never dropped: nothing runs at unload or thread exit.
static AUTH_TYPE_VALUES: RwLock<Vec<(Box<str>, u32)>> = RwLock::new(Vec::new());

/// The dictionary's value of `Auth-Type` named `name`, if a section declared it.
fn auth_type_value(name: &str) -> Option<u32> {
    let known = |values: &[(Box<str>, u32)]| values.iter().find(|(n, _)| **n == *name).map(|(_, v)| *v);
    if let Some(value) = known(&AUTH_TYPE_VALUES.read().unwrap_or_else(PoisonError::into_inner)) {
        return Some(value);
    }
    let c_name = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name; dictionary values live as long as the server.
    let value = unsafe {
        let dv = dict_valbyname(PW_AUTH_TYPE, 0, c_name.as_ptr());
        if dv.is_null() {
            return None;
        }
        (*dv).value as u32
    };
    let mut values = AUTH_TYPE_VALUES.write().unwrap_or_else(PoisonError::into_inner);
    if known(&values).is_none() {
        values.push((name.into(), value));
    }
    Some(value)
}

/// request_data's key for a module instance: one of this library's own statics (no
/// other module uses their addresses) and a hash of the instance name.
fn stash_key(slot: Slot, name: &str) -> (*mut c_void, i32) {
    static STASH: u8 = 0;
    static PENDING: u8 = 0;
    static VERIFIED: u8 = 0;
    let key = match slot {
        Slot::Code => &STASH,
        Slot::Pending => &PENDING,
        Slot::Verified => &VERIFIED,
    };
    let mut hash: u32 = 0x811c_9dc5; // FNV-1a: small, stable, enough to tell instance names apart
    for b in name.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (key as *const u8 as *mut c_void, hash as i32)
}

/// Address families as FreeRADIUS stores them (the C library's values).
mod libc_af {
    pub const INET: i32 = 2;
    pub const INET6: i32 = 10;
}

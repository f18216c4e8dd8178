//! The module's instance memory and the CONF_PARSER table that fills it.
//!
//! FreeRADIUS allocates `inst_size` zeroed bytes per instance and writes each
//! item at its offset: strings as `char const *` owned by the configuration
//! tree (never freed here), integers as u32, booleans as one byte. All zeroes is
//! a valid state (null strings, no engine), as the server requires.

use std::ffi::{c_char, c_void, CStr};
use std::mem::offset_of;
use std::ptr;

use super::bindings::{
    main_config, CONF_PARSER, PW_TYPE_PW_TYPE_BOOLEAN, PW_TYPE_PW_TYPE_INTEGER, PW_TYPE_PW_TYPE_STRING,
    PW_TYPE_SUBSECTION,
};
use mfa_core::config::{RawConfig, RawGateway, RawPrivacyIdea, RawPush};
use mfa_core::engine::Backend;

#[repr(C)]
pub struct Instance {
    mode: *const c_char,
    tokens: *const c_char,
    state: *const c_char,
    fsync: bool,
    require_token: bool,
    totp_window: u32,
    hotp_look_ahead: u32,
    separator: *const c_char,
    otp_position: *const c_char,
    otp_length: u32,
    user_suffix: *const c_char,
    user_map: *const c_char,
    realm_delimiter: *const c_char,
    realm_split: *const c_char,
    realm_position: *const c_char,
    realm_strip: bool,
    lockout_max_failures: u32,
    lockout_duration: u32,
    msg_wrong_code: *const c_char,
    msg_locked: *const c_char,
    msg_no_token: *const c_char,
    msg_bad_format: *const c_char,
    msg_no_code: *const c_char,
    msg_bad_user: *const c_char,
    msg_internal: *const c_char,
    state_key: *const c_char,
    challenge_timeout: u32,
    max_rounds: u32,
    code_length: u32,
    code_lifetime: u32,
    sms: GatewayItems,
    email: GatewayItems,
    msg_prompt_code: *const c_char,
    msg_prompt_sent: *const c_char,
    msg_menu_header: *const c_char,
    msg_menu_item: *const c_char,
    msg_menu_footer: *const c_char,
    msg_bad_choice: *const c_char,
    msg_wrong_answer: *const c_char,
    msg_bad_state: *const c_char,
    msg_send_failed: *const c_char,
    push: PushItems,
    msg_push_denied: *const c_char,
    msg_push_timeout: *const c_char,
    msg_push_unavailable: *const c_char,
    msg_push_busy: *const c_char,
    msg_push_prompt: *const c_char,
    msg_push_pending: *const c_char,
    msg_push_menu: *const c_char,
    auto_code_pattern: *const c_char,
    ignore_case: bool,
    backend: *const c_char,
    privacyidea: PiItems,
    msg_rejected: *const c_char,
    /// Set by instantiate (Arc::into_raw), released by detach.
    pub engine: *const Backend,
}

/// The items of an `sms { }` or `email { }` section.
#[repr(C)]
struct GatewayItems {
    url: *const c_char,
    authorization: *const c_char,
    body: *const c_char,
    message: *const c_char,
    timeout: u32,
}

/// The items of the `push { }` section.
#[repr(C)]
struct PushItems {
    url: *const c_char,
    secondary_url: *const c_char,
    authorization: *const c_char,
    timeout: u32,
    skip_failing: u32,
    poll_interval: u32,
    wait: u32,
    max_waiting: u32,
    failmode: *const c_char,
    message: *const c_char,
    approval: *const c_char,
    when_busy: *const c_char,
}

/// The items of the `privacyidea { }` section.
#[repr(C)]
struct PiItems {
    url: *const c_char,
    realm: *const c_char,
    ca_file: *const c_char,
    ca_path: *const c_char,
    api_key: *const c_char,
    api_key_header: *const c_char,
    timeout: u32,
    skip_failing: u32,
    reuse_connections: bool,
    poll: *const c_char,
    poll_wait: u32,
    poll_interval: u32,
    max_waiting: u32,
    split_null_byte: bool,
    send_client: bool,
}

/// A table of rows with raw pointers, shared read-only with the server.
#[repr(transparent)]
pub struct Table<const N: usize>(pub [CONF_PARSER; N]);
// SAFETY: the rows point at 'static C strings and other static tables, never written.
unsafe impl<const N: usize> Sync for Table<N> {}

const STRING: i32 = PW_TYPE_PW_TYPE_STRING as i32;
const INTEGER: i32 = PW_TYPE_PW_TYPE_INTEGER as i32;
const BOOLEAN: i32 = PW_TYPE_PW_TYPE_BOOLEAN as i32;
const SUBSECTION: i32 = PW_TYPE_SUBSECTION as i32;
/// PW_TYPE_SECRET: the value is shown only at debug level 3 and above.
const SECRET: i32 = 1 << 13;

const fn row(name: &'static CStr, kind: i32, offset: usize, default: Option<&'static CStr>) -> CONF_PARSER {
    CONF_PARSER {
        name: name.as_ptr(),
        type_: kind,
        offset,
        data: ptr::null_mut(),
        dflt: match default {
            Some(d) => d.as_ptr() as *const c_void,
            None => ptr::null(),
        },
    }
}

const fn subsection<const N: usize>(name: &'static CStr, table: &'static Table<N>) -> CONF_PARSER {
    CONF_PARSER {
        name: name.as_ptr(),
        type_: SUBSECTION,
        offset: 0,
        data: ptr::null_mut(),
        dflt: table.0.as_ptr() as *const c_void,
    }
}

const END: CONF_PARSER =
    CONF_PARSER { name: ptr::null(), type_: -1, offset: 0, data: ptr::null_mut(), dflt: ptr::null() };

static REALM: Table<5> = Table([
    row(c"delimiter", STRING, offset_of!(Instance, realm_delimiter), Some(c"@")),
    row(c"split", STRING, offset_of!(Instance, realm_split), Some(c"last")),
    // No default: suffix for "@", prefix for "\" (config.rs).
    row(c"position", STRING, offset_of!(Instance, realm_position), None),
    row(c"strip", BOOLEAN, offset_of!(Instance, realm_strip), Some(c"yes")),
    END,
]);

static LOCKOUT: Table<3> = Table([
    row(c"max_failures", INTEGER, offset_of!(Instance, lockout_max_failures), Some(c"5")),
    row(c"duration", INTEGER, offset_of!(Instance, lockout_duration), Some(c"300")),
    END,
]);

/// Rows of a gateway section at `base`, the offset of its GatewayItems in Instance.
const fn gateway_rows(base: usize, message: &'static CStr) -> [CONF_PARSER; 6] {
    [
        // URLs may carry credentials (user:password@, a key in the query).
        row(c"url", STRING | SECRET, base + offset_of!(GatewayItems, url), None),
        row(c"authorization", STRING | SECRET, base + offset_of!(GatewayItems, authorization), None),
        row(c"body", STRING, base + offset_of!(GatewayItems, body), None),
        row(c"message", STRING, base + offset_of!(GatewayItems, message), Some(message)),
        row(c"timeout", INTEGER, base + offset_of!(GatewayItems, timeout), Some(c"5")),
        END,
    ]
}

static SMS: Table<6> = Table(gateway_rows(offset_of!(Instance, sms), c"Your login code is {code} ({correlation})"));
static EMAIL: Table<6> = Table(gateway_rows(offset_of!(Instance, email), c"Your login code is {code} ({correlation})"));

const fn push_row(name: &'static CStr, kind: i32, field: usize, default: Option<&'static CStr>) -> CONF_PARSER {
    row(name, kind, offset_of!(Instance, push) + field, default)
}

static PUSH: Table<13> = Table([
    // URLs may carry credentials (user:password@, a key in the query).
    push_row(c"url", STRING | SECRET, offset_of!(PushItems, url), None),
    push_row(c"secondary_url", STRING | SECRET, offset_of!(PushItems, secondary_url), None),
    push_row(c"authorization", STRING | SECRET, offset_of!(PushItems, authorization), None),
    push_row(c"timeout", INTEGER, offset_of!(PushItems, timeout), Some(c"5")),
    push_row(c"skip_failing", INTEGER, offset_of!(PushItems, skip_failing), Some(c"30")),
    push_row(c"poll_interval", INTEGER, offset_of!(PushItems, poll_interval), Some(c"2")),
    push_row(c"wait", INTEGER, offset_of!(PushItems, wait), Some(c"15")),
    push_row(c"max_waiting", INTEGER, offset_of!(PushItems, max_waiting), Some(c"8")),
    push_row(c"failmode", STRING, offset_of!(PushItems, failmode), Some(c"secure")),
    push_row(c"message", STRING, offset_of!(PushItems, message), None),
    push_row(c"approval", STRING, offset_of!(PushItems, approval), Some(c"wait")),
    push_row(c"when_busy", STRING, offset_of!(PushItems, when_busy), Some(c"challenge")),
    END,
]);

const fn pi_row(name: &'static CStr, kind: i32, field: usize, default: Option<&'static CStr>) -> CONF_PARSER {
    row(name, kind, offset_of!(Instance, privacyidea) + field, default)
}

static PRIVACYIDEA: Table<16> = Table([
    // URLs may carry credentials (user:password@, a key in the query).
    pi_row(c"url", STRING | SECRET, offset_of!(PiItems, url), None),
    pi_row(c"realm", STRING, offset_of!(PiItems, realm), None),
    pi_row(c"ca_file", STRING, offset_of!(PiItems, ca_file), None),
    pi_row(c"ca_path", STRING, offset_of!(PiItems, ca_path), None),
    pi_row(c"api_key", STRING | SECRET, offset_of!(PiItems, api_key), None),
    pi_row(c"api_key_header", STRING, offset_of!(PiItems, api_key_header), Some(c"Authorization")),
    pi_row(c"timeout", INTEGER, offset_of!(PiItems, timeout), Some(c"4")),
    pi_row(c"skip_failing", INTEGER, offset_of!(PiItems, skip_failing), Some(c"30")),
    pi_row(c"reuse_connections", BOOLEAN, offset_of!(PiItems, reuse_connections), Some(c"yes")),
    pi_row(c"poll", STRING, offset_of!(PiItems, poll), Some(c"wait")),
    pi_row(c"poll_wait", INTEGER, offset_of!(PiItems, poll_wait), Some(c"15")),
    pi_row(c"poll_interval", INTEGER, offset_of!(PiItems, poll_interval), Some(c"1")),
    pi_row(c"max_waiting", INTEGER, offset_of!(PiItems, max_waiting), Some(c"8")),
    pi_row(c"split_null_byte", BOOLEAN, offset_of!(PiItems, split_null_byte), Some(c"no")),
    pi_row(c"send_client", BOOLEAN, offset_of!(PiItems, send_client), Some(c"yes")),
    END,
]);

// Messages have no default here: config.rs holds them, so there is one source.
static MESSAGES: Table<25> = Table([
    row(c"wrong_code", STRING, offset_of!(Instance, msg_wrong_code), None),
    row(c"locked", STRING, offset_of!(Instance, msg_locked), None),
    row(c"no_token", STRING, offset_of!(Instance, msg_no_token), None),
    row(c"bad_format", STRING, offset_of!(Instance, msg_bad_format), None),
    row(c"no_code", STRING, offset_of!(Instance, msg_no_code), None),
    row(c"bad_user", STRING, offset_of!(Instance, msg_bad_user), None),
    row(c"internal", STRING, offset_of!(Instance, msg_internal), None),
    row(c"prompt_code", STRING, offset_of!(Instance, msg_prompt_code), None),
    row(c"prompt_sent", STRING, offset_of!(Instance, msg_prompt_sent), None),
    row(c"menu_header", STRING, offset_of!(Instance, msg_menu_header), None),
    row(c"menu_item", STRING, offset_of!(Instance, msg_menu_item), None),
    row(c"menu_footer", STRING, offset_of!(Instance, msg_menu_footer), None),
    row(c"bad_choice", STRING, offset_of!(Instance, msg_bad_choice), None),
    row(c"wrong_answer", STRING, offset_of!(Instance, msg_wrong_answer), None),
    row(c"bad_state", STRING, offset_of!(Instance, msg_bad_state), None),
    row(c"send_failed", STRING, offset_of!(Instance, msg_send_failed), None),
    row(c"push_denied", STRING, offset_of!(Instance, msg_push_denied), None),
    row(c"push_timeout", STRING, offset_of!(Instance, msg_push_timeout), None),
    row(c"push_unavailable", STRING, offset_of!(Instance, msg_push_unavailable), None),
    row(c"push_busy", STRING, offset_of!(Instance, msg_push_busy), None),
    row(c"push_prompt", STRING, offset_of!(Instance, msg_push_prompt), None),
    row(c"push_pending", STRING, offset_of!(Instance, msg_push_pending), None),
    row(c"push_menu", STRING, offset_of!(Instance, msg_push_menu), None),
    row(c"rejected", STRING, offset_of!(Instance, msg_rejected), None),
    END,
]);

pub static CONFIG: Table<28> = Table([
    row(c"backend", STRING, offset_of!(Instance, backend), Some(c"local")),
    row(c"mode", STRING, offset_of!(Instance, mode), Some(c"otp")),
    row(c"tokens", STRING, offset_of!(Instance, tokens), Some(c"${modconfdir}/mfa/tokens.json")),
    row(c"state", STRING, offset_of!(Instance, state), Some(c"${db_dir}/mfa/state.jsonl")),
    row(c"fsync", BOOLEAN, offset_of!(Instance, fsync), Some(c"no")),
    row(c"require_token", BOOLEAN, offset_of!(Instance, require_token), Some(c"yes")),
    row(c"ignore_case", BOOLEAN, offset_of!(Instance, ignore_case), Some(c"no")),
    row(c"totp_window", INTEGER, offset_of!(Instance, totp_window), Some(c"1")),
    row(c"hotp_look_ahead", INTEGER, offset_of!(Instance, hotp_look_ahead), Some(c"10")),
    row(c"separator", STRING, offset_of!(Instance, separator), Some(c",")),
    row(c"otp_position", STRING, offset_of!(Instance, otp_position), Some(c"last")),
    row(c"otp_length", INTEGER, offset_of!(Instance, otp_length), Some(c"6")),
    // No default here: config.rs holds it.
    row(c"auto_code_pattern", STRING, offset_of!(Instance, auto_code_pattern), None),
    row(c"user_suffix", STRING, offset_of!(Instance, user_suffix), None),
    row(c"user_map", STRING, offset_of!(Instance, user_map), None),
    row(c"state_key", STRING, offset_of!(Instance, state_key), Some(c"${modconfdir}/mfa/state.key")),
    row(c"challenge_timeout", INTEGER, offset_of!(Instance, challenge_timeout), Some(c"180")),
    row(c"max_rounds", INTEGER, offset_of!(Instance, max_rounds), Some(c"3")),
    row(c"code_length", INTEGER, offset_of!(Instance, code_length), Some(c"6")),
    row(c"code_lifetime", INTEGER, offset_of!(Instance, code_lifetime), Some(c"300")),
    subsection(c"sms", &SMS),
    subsection(c"email", &EMAIL),
    subsection(c"push", &PUSH),
    subsection(c"realm", &REALM),
    subsection(c"lockout", &LOCKOUT),
    subsection(c"messages", &MESSAGES),
    subsection(c"privacyidea", &PRIVACYIDEA),
    END,
]);

/// A configuration string, or None when the item is absent.
///
/// # Safety
/// `p` is null or a NUL-terminated string that lives as long as the configuration.
unsafe fn text(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        Some(CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

impl Instance {
    /// The items as FreeRADIUS parsed them.
    pub fn raw_config(&self) -> RawConfig {
        // SAFETY: every string field is null or set by the server's parser from the
        // configuration tree, which outlives the instance.
        unsafe {
            RawConfig {
                mode: text(self.mode),
                tokens: text(self.tokens),
                state: text(self.state),
                fsync: self.fsync,
                require_token: self.require_token,
                totp_window: self.totp_window,
                hotp_look_ahead: self.hotp_look_ahead,
                separator: text(self.separator),
                otp_position: text(self.otp_position),
                otp_length: self.otp_length,
                user_suffix: text(self.user_suffix),
                user_map: text(self.user_map),
                realm_delimiter: text(self.realm_delimiter),
                realm_split: text(self.realm_split),
                realm_position: text(self.realm_position),
                realm_strip: self.realm_strip,
                lockout_max_failures: self.lockout_max_failures,
                lockout_duration: self.lockout_duration,
                msg_wrong_code: text(self.msg_wrong_code),
                msg_locked: text(self.msg_locked),
                msg_no_token: text(self.msg_no_token),
                msg_bad_format: text(self.msg_bad_format),
                msg_no_code: text(self.msg_no_code),
                msg_bad_user: text(self.msg_bad_user),
                msg_internal: text(self.msg_internal),
                state_key: text(self.state_key),
                challenge_timeout: self.challenge_timeout,
                max_rounds: self.max_rounds,
                code_length: self.code_length,
                code_lifetime: self.code_lifetime,
                sms: self.sms.raw(),
                email: self.email.raw(),
                msg_prompt_code: text(self.msg_prompt_code),
                msg_prompt_sent: text(self.msg_prompt_sent),
                msg_menu_header: text(self.msg_menu_header),
                msg_menu_item: text(self.msg_menu_item),
                msg_menu_footer: text(self.msg_menu_footer),
                msg_bad_choice: text(self.msg_bad_choice),
                msg_wrong_answer: text(self.msg_wrong_answer),
                msg_bad_state: text(self.msg_bad_state),
                msg_send_failed: text(self.msg_send_failed),
                push: self.push.raw(),
                msg_push_denied: text(self.msg_push_denied),
                msg_push_timeout: text(self.msg_push_timeout),
                msg_push_unavailable: text(self.msg_push_unavailable),
                msg_push_busy: text(self.msg_push_busy),
                msg_push_prompt: text(self.msg_push_prompt),
                msg_push_pending: text(self.msg_push_pending),
                msg_push_menu: text(self.msg_push_menu),
                server_max_request_time: server_max_request_time(),
                auto_code_pattern: text(self.auto_code_pattern),
                ignore_case: self.ignore_case,
                backend: text(self.backend),
                privacyidea: self.privacyidea.raw(),
                // Filled from the configuration tree by the caller (sections.rs).
                reply: Vec::new(),
                msg_rejected: text(self.msg_rejected),
            }
        }
    }
}

impl GatewayItems {
    fn raw(&self) -> RawGateway {
        // SAFETY: as in Instance::raw_config.
        unsafe {
            RawGateway {
                url: text(self.url),
                authorization: text(self.authorization),
                body: text(self.body),
                message: text(self.message),
                timeout: self.timeout,
            }
        }
    }
}

impl PushItems {
    fn raw(&self) -> RawPush {
        // SAFETY: as in Instance::raw_config.
        unsafe {
            RawPush {
                url: text(self.url),
                secondary_url: text(self.secondary_url),
                authorization: text(self.authorization),
                timeout: self.timeout,
                skip_failing: self.skip_failing,
                poll_interval: self.poll_interval,
                wait: self.wait,
                max_waiting: self.max_waiting,
                failmode: text(self.failmode),
                message: text(self.message),
                approval: text(self.approval),
                when_busy: text(self.when_busy),
            }
        }
    }
}

impl PiItems {
    fn raw(&self) -> RawPrivacyIdea {
        // SAFETY: as in Instance::raw_config.
        unsafe {
            RawPrivacyIdea {
                url: text(self.url),
                realm: text(self.realm),
                realms: Vec::new(),
                ca_file: text(self.ca_file),
                ca_path: text(self.ca_path),
                api_key: text(self.api_key),
                api_key_header: text(self.api_key_header),
                timeout: self.timeout,
                skip_failing: self.skip_failing,
                reuse_connections: self.reuse_connections,
                poll: text(self.poll),
                poll_wait: self.poll_wait,
                poll_interval: self.poll_interval,
                max_waiting: self.max_waiting,
                split_null_byte: self.split_null_byte,
                send_client: self.send_client,
            }
        }
    }
}

/// The server's `max_request_time`, which a push wait must end before.
fn server_max_request_time() -> u32 {
    // SAFETY: a global the server fills from radiusd.conf before it instantiates modules,
    // and only reads afterwards.
    unsafe { main_config.max_request_time }
}

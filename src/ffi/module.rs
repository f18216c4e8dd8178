//! The exported `module_t` (symbol `rlm_mfa`) and its callbacks.

use std::ffi::{c_int, c_void, CStr};
use std::mem::size_of;
use std::ptr;
use std::sync::Arc;

use super::bindings::{
    cf_log_err_cs, cf_section_name1, cf_section_name2, log_type_L_DBG, log_type_L_ERR, log_type_L_INFO,
    log_type_L_WARN, module_t, packetmethod, radlog, rlm_components_MOD_AUTHENTICATE, rlm_components_MOD_AUTHORIZE,
    rlm_components_MOD_COUNT, rlm_components_MOD_POST_AUTH, rlm_mfa_abi_RLM_MFA_MODULE_INIT, rlm_rcode_t,
    rlm_rcodes_RLM_MODULE_FAIL, rlm_rcodes_RLM_MODULE_HANDLED, rlm_rcodes_RLM_MODULE_INVALID,
    rlm_rcodes_RLM_MODULE_NOOP, rlm_rcodes_RLM_MODULE_OK, rlm_rcodes_RLM_MODULE_REJECT, rlm_rcodes_RLM_MODULE_UPDATED,
    rlm_rcodes_RLM_MODULE_USERLOCK, CONF_SECTION, PW_CODE_PW_CODE_ACCESS_CHALLENGE, PW_CODE_PW_CODE_ACCESS_REJECT,
    PW_EAP_MESSAGE, PW_USER_NAME, PW_USER_PASSWORD, REQUEST, RLM_TYPE_HUP_SAFE, RLM_TYPE_THREAD_SAFE,
};
use super::conf::{self, Instance};
use super::post_auth;
use super::request::{log_raw, List, NasIdentity, Request, Slot};
use mfa_core::clock::SystemClock;
use mfa_core::config::Config;
use mfa_core::engine::post_auth::{Duty, PostAuthInput};
use mfa_core::engine::{AuthenticateInput, AuthorizeInput, Backend, Chap, Level, MsChap2, Outcome};
use mfa_core::guard::{guarded, install_panic_hook};
use mfa_core::stats::{Counters, Report, Writer};

/// `module_t` holds raw pointers; the server only reads it.
#[repr(transparent)]
pub struct ModuleExport(module_t);
// SAFETY: immutable after load; the pointers are to 'static data and functions.
unsafe impl Sync for ModuleExport {}

/// One slot per section: authorize, authenticate and post-auth are ours.
const fn methods() -> [packetmethod; rlm_components_MOD_COUNT as usize] {
    let mut m: [packetmethod; rlm_components_MOD_COUNT as usize] = [None; rlm_components_MOD_COUNT as usize];
    m[rlm_components_MOD_AUTHENTICATE as usize] = Some(mod_authenticate);
    m[rlm_components_MOD_AUTHORIZE as usize] = Some(mod_authorize);
    m[rlm_components_MOD_POST_AUTH as usize] = Some(mod_post_auth);
    m
}

/// The symbol FreeRADIUS looks up in rlm_mfa.so.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static rlm_mfa: ModuleExport = ModuleExport(module_t {
    // The enum's integer type follows the value; the cast is a no-op on 3.2.1's headers.
    #[allow(clippy::unnecessary_cast)]
    magic: rlm_mfa_abi_RLM_MFA_MODULE_INIT as u64,
    name: c"mfa".as_ptr(),
    // HUP_SAFE: a HUP builds a new instance from the configuration as it is now. The
    // old instance's memory is freed by a later HUP; requests still running in its
    // engine (a push wait) hold their own reference to it (see with_engine).
    type_: (RLM_TYPE_THREAD_SAFE | RLM_TYPE_HUP_SAFE) as i32,
    inst_size: size_of::<Instance>(),
    // No table here: instantiate parses the section itself (conf.rs), from the
    // core's declarations, so that a HUP reads the new section.
    config: ptr::null(),
    bootstrap: None,
    instantiate: Some(mod_instantiate),
    detach: Some(mod_detach),
    methods: methods(),
});

/// The instance's name: `mfa` for `mfa { }`, `mfa_vpn` for `mfa mfa_vpn { }`.
unsafe fn instance_name(conf: *mut CONF_SECTION) -> String {
    let mut name = cf_section_name2(conf);
    if name.is_null() {
        name = cf_section_name1(conf);
    }
    if name.is_null() {
        return "mfa".into();
    }
    CStr::from_ptr(name).to_string_lossy().into_owned()
}

unsafe fn config_error(conf: *mut CONF_SECTION, text: &str) {
    let text = std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default();
    cf_log_err_cs(conf, c"%s".as_ptr(), text.as_ptr());
}

/// Logs one line outside any request (start-up): the server's log, as its own
/// warnings are.
unsafe fn log_global(level: Level, text: &str) {
    let kind = match level {
        Level::Debug => log_type_L_DBG,
        Level::Info => log_type_L_INFO,
        Level::Warn => log_type_L_WARN,
        Level::Error => log_type_L_ERR,
    };
    let text = std::ffi::CString::new(super::request::escape_nul(text).as_bytes()).unwrap_or_default();
    radlog(kind, c"%s".as_ptr(), text.as_ptr());
}

unsafe extern "C" fn mod_instantiate(conf: *mut CONF_SECTION, instance: *mut c_void) -> c_int {
    install_panic_hook();
    let report = |text: &str| config_error(conf, &format!("rlm_mfa: panic during instantiate: {text}"));
    guarded(-1, report, || {
        let Some(inst) = (instance as *mut Instance).as_mut() else { return -1 };
        let name = instance_name(conf);
        // On a HUP, FreeRADIUS 3.2 passes the new section here: parsing it (rather
        // than letting the server fill the instance from the old one) applies every change.
        let mut raw = match conf::parse(conf) {
            Ok(raw) => raw,
            Err(conf::ParseError::Refused) => {
                config_error(conf, &format!("rlm_mfa ({name}): the configuration cannot be parsed"));
                return -1;
            }
            Err(conf::ParseError::Invalid(e)) => {
                config_error(conf, &format!("rlm_mfa ({name}): {e}"));
                return -1;
            }
        };
        match super::sections::reply_rules(conf) {
            Ok(rules) => raw.reply = rules,
            Err(e) => {
                config_error(conf, &format!("rlm_mfa ({name}): invalid 'reply': {e}"));
                return -1;
            }
        }
        raw.privacyidea.realms = super::sections::privacyidea_realms(conf);
        if let Err(e) = post_auth::register_attribute() {
            config_error(conf, &format!("rlm_mfa ({name}): {e}"));
            return -1;
        }
        for server in post_auth::unchecked_servers(conf, &name) {
            let text = std::ffi::CString::new(format!(
                "rlm_mfa ({name}): virtual server \"{server}\" uses {name} but does not list it in post-auth: \
                 there an Accept that did not pass through {name} (an Auth-Type set by policy, EAP with an inner \
                 MSCHAPv2, ...) is not refused; add \"{name}\" to its post-auth section (see sites-available/mfa)"
            ))
            .unwrap_or_default();
            radlog(log_type_L_WARN, c"%s".as_ptr(), text.as_ptr());
        }
        let cfg = match Config::from_raw(&raw) {
            Ok(c) => c,
            Err(e) => {
                config_error(conf, &format!("rlm_mfa ({name}): {e}"));
                return -1;
            }
        };
        let stats = cfg.stats.clone();
        match Backend::new(&name, cfg, Arc::new(SystemClock)) {
            Ok(engine) => {
                for warning in engine.startup_warnings() {
                    log_global(Level::Warn, &format!("rlm_mfa ({name}): {warning}"));
                }
                if let Some(stats) = stats {
                    let counters = Counters::for_instance(&name);
                    let tag = name.clone();
                    // SAFETY: radlog may be called from any thread of the server.
                    let report: Report = Arc::new(move |line: &str| unsafe {
                        log_global(Level::Error, &format!("rlm_mfa ({tag}): {line}"))
                    });
                    match Writer::start(&name, &stats.file, stats.interval, counters, Arc::new(SystemClock), report) {
                        Ok(writer) => {
                            inst.counters = counters;
                            inst.stats_writer = Box::into_raw(Box::new(writer));
                        }
                        Err(e) => {
                            config_error(
                                conf,
                                &format!("rlm_mfa ({name}): invalid 'stats.file': {}: {e}", stats.file.display()),
                            );
                            return -1;
                        }
                    }
                }
                inst.engine = Arc::into_raw(Arc::new(engine));
                0
            }
            Err(e) => {
                config_error(conf, &format!("rlm_mfa ({name}): {e}"));
                -1
            }
        }
    })
}

/// The instance's talloc destructor; also runs after a failed instantiate.
unsafe extern "C" fn mod_detach(instance: *mut c_void) -> c_int {
    guarded(
        0,
        |_| {},
        || {
            if let Some(inst) = (instance as *mut Instance).as_mut() {
                let engine = std::mem::replace(&mut inst.engine, ptr::null());
                if !engine.is_null() {
                    // The instance's reference; requests still running keep theirs.
                    drop(Arc::from_raw(engine));
                }
                let writer = std::mem::replace(&mut inst.stats_writer, ptr::null_mut());
                if !writer.is_null() {
                    // Stops the thread, which writes the counters once more.
                    drop(Box::from_raw(writer));
                }
            }
            0
        },
    )
}

fn rcode(outcome: Option<Outcome>) -> rlm_rcode_t {
    match outcome {
        Some(Outcome::Ok) => rlm_rcodes_RLM_MODULE_OK,
        Some(Outcome::Updated) => rlm_rcodes_RLM_MODULE_UPDATED,
        Some(Outcome::Noop) => rlm_rcodes_RLM_MODULE_NOOP,
        Some(Outcome::Reject) => rlm_rcodes_RLM_MODULE_REJECT,
        Some(Outcome::Userlock) => rlm_rcodes_RLM_MODULE_USERLOCK,
        Some(Outcome::Invalid) => rlm_rcodes_RLM_MODULE_INVALID,
        // The reply code is already Access-Challenge: HANDLED sends it as it is.
        Some(Outcome::Challenge) => rlm_rcodes_RLM_MODULE_HANDLED,
        Some(Outcome::Fail) | None => rlm_rcodes_RLM_MODULE_FAIL,
    }
}

/// The instance's counters, when `stats { file }` turns them on.
unsafe fn counters(instance: *mut c_void) -> Option<&'static Counters> {
    // SAFETY: the pointer is null or from Counters::for_instance, which lives as long as the process.
    (instance as *const Instance).as_ref().and_then(|i| i.counters.as_ref())
}

/// Runs a request callback with the panic guard and the instance's engine, within
/// the request's store budget: authorize, authenticate and post-auth of one request
/// share it (each goes on with what the one before it left).
unsafe fn with_engine(
    instance: *mut c_void,
    raw: *mut REQUEST,
    body: impl FnOnce(&Backend, Request<'_>) -> rlm_rcode_t,
) -> rlm_rcode_t {
    let report = |text: &str| log_raw(raw, Level::Error, &format!("internal error (panic): {text}"));
    guarded(rlm_rcodes_RLM_MODULE_FAIL, report, || {
        let pointer = (instance as *const Instance).as_ref().map_or(ptr::null(), |i| i.engine);
        // A reference of the request's own, taken while the instance is known alive (the
        // server passed it in): the engine outlives a HUP that frees the instance meanwhile.
        let engine = (!pointer.is_null()).then(|| {
            Arc::increment_strong_count(pointer);
            Arc::from_raw(pointer)
        });
        match (engine.as_deref(), Request::from_raw(raw)) {
            (Some(engine), Some(request)) => {
                let _budget = engine.request_budget(Some(request.number()));
                body(engine, request)
            }
            (None, _) => {
                log_raw(raw, Level::Error, "module instance has no engine (instantiate failed?)");
                rlm_rcodes_RLM_MODULE_FAIL
            }
            (_, None) => rlm_rcodes_RLM_MODULE_FAIL,
        }
    })
}

unsafe extern "C" fn mod_authorize(instance: *mut c_void, raw: *mut REQUEST) -> rlm_rcode_t {
    let counters = counters(instance);
    with_engine(instance, raw, |engine, mut request| {
        let auth_type = request.auth_type();
        let attributes = request.attributes();
        let out = engine.authorize(AuthorizeInput {
            user_name: attributes.user_name,
            password: attributes.user_password,
            auth_type: auth_type.as_deref(),
            has_state: attributes.state.is_some(),
            eap: attributes.eap_message.is_some(),
            quiet: !request.debug_enabled(),
        });
        if let Some(counters) = counters {
            counters.count(out.tally());
        }
        for line in &out.log {
            request.log(line.level, &line.text);
        }
        if let Some(name) = &out.stripped_user_name {
            request.set_stripped_user_name(name);
        }
        if let Some(realm) = &out.realm {
            request.set_realm(realm);
        }
        if let Some(password) = &out.password {
            request.overwrite_request_string(PW_USER_PASSWORD, password);
        }
        if let Some(code) = &out.stashed_code {
            if !request.stash(engine.name(), code) {
                request.log(Level::Error, "cannot keep the code with the request");
                return rlm_rcodes_RLM_MODULE_FAIL;
            }
        }
        if out.accept {
            // Mode otp-or-push: a code typed alone, verified here. Auth-Type Accept skips
            // the first factor, which never saw this field; post-auth finds the mark.
            if !request.set_auth_type("Accept") || !request.keep_mark(Slot::Verified, engine.name()) {
                request.log(Level::Error, "cannot set Auth-Type Accept or keep a mark with the request");
                return rlm_rcodes_RLM_MODULE_FAIL;
            }
            if request.is_inner() {
                if let Duty::Required(user) = engine.duty(request.bytes(List::Request, PW_USER_NAME)) {
                    post_auth::inner_verified(&mut request, engine.name(), &user);
                }
            }
        } else if out.set_auth_type && !request.set_auth_type(engine.name()) {
            request.log(
                Level::Error,
                &format!(
                    "cannot set Auth-Type \"{}\": is there an Auth-Type {} {{ }} section?",
                    engine.name(),
                    engine.name()
                ),
            );
            return rlm_rcodes_RLM_MODULE_FAIL;
        }
        if out.deferred && !request.keep_mark(Slot::Pending, engine.name()) {
            request.log(Level::Error, "cannot keep a mark with the request");
            return rlm_rcodes_RLM_MODULE_FAIL;
        }
        // Inside a tunnel: the outer login's Accept will need this user verified.
        if request.is_inner() && !matches!(out.outcome, Some(Outcome::Reject | Outcome::Invalid | Outcome::Userlock)) {
            if let Duty::Required(user) = engine.duty(request.bytes(List::Request, PW_USER_NAME)) {
                post_auth::inner_required(&mut request, engine.name(), &user);
            }
        }
        if let Some(message) = &out.reply_message {
            request.add_reply_message(message);
        }
        rcode(out.outcome)
    })
}

unsafe extern "C" fn mod_authenticate(instance: *mut c_void, raw: *mut REQUEST) -> rlm_rcode_t {
    let counters = counters(instance);
    with_engine(instance, raw, |engine, mut request| {
        let stashed_code = request.take_stash(engine.name());
        let deferred_split = request.take_mark(Slot::Pending, engine.name());
        let attributes = request.attributes();
        let eap = attributes.eap_message.is_some();
        let pushes = engine.config().push.is_some();
        let privacyidea = engine.config().privacyidea.is_some();
        let duo = engine.config().duo.is_some();
        let binds_nas = pushes || privacyidea || duo || engine.config().mode.challenges();
        let nas = binds_nas.then(|| request.nas_identity(&attributes));
        let chap = attributes.chap_password.and_then(|answer| {
            let authenticator = request.authenticator();
            let challenge = attributes.chap_challenge.unwrap_or(&authenticator);
            Chap::from_attribute(answer, challenge)
        });
        // MS-CHAPv2 (RFC 2548): the name the client hashed is MS-CHAP-User-Name where
        // rlm_eap_mschapv2 set one, else User-Name.
        let mschap2 = attributes.mschap2_response.and_then(|answer| {
            let challenge = attributes.mschap_challenge?;
            let name = attributes.ms_chap_user_name.or(attributes.user_name)?;
            MsChap2::from_attributes(challenge, answer, name)
        });
        let out = engine.authenticate(AuthenticateInput {
            user_name: attributes.user_name,
            password: attributes.user_password,
            chap,
            mschap2,
            state: attributes.state,
            // Only challenges and pushes use the NAS; the other modes skip the formatting.
            nas: nas.as_ref().map(NasIdentity::key).unwrap_or_default(),
            client: if pushes { request.client_name() } else { String::new() },
            nas_name: if pushes || duo {
                nas.as_ref().map(NasIdentity::name).unwrap_or_default()
            } else {
                String::new()
            },
            session: if pushes || privacyidea || duo { attributes.session() } else { String::new() },
            nas_address: if privacyidea {
                nas.as_ref().map(|n| n.address().to_string()).unwrap_or_default()
            } else {
                String::new()
            },
            stashed_code,
            eap,
            inner: request.is_inner(),
            deferred_split,
            quiet: !request.debug_enabled(),
        });
        if let Some(counters) = counters {
            counters.count(out.tally());
        }
        for line in &out.log {
            request.log(line.level, &line.text);
        }
        for message in &out.reply_messages {
            request.add_reply_message(message);
        }
        for (name, value) in &out.reply_attributes {
            if !request.add_reply_attribute(name, value) {
                request
                    .log(Level::Warn, &format!("reply {name}: the value does not fit the attribute's type, left out"));
            }
        }
        if let Some(state) = &out.challenge_state {
            if !request.set_challenge(state) {
                request.log(Level::Error, "cannot add the State to the challenge");
                return rlm_rcodes_RLM_MODULE_FAIL;
            }
        }
        if let Some(split) = &out.split {
            // EAP-GTC: the password part for the first factor, the code for the next call.
            if !request.overwrite_request_string(PW_USER_PASSWORD, &split.password)
                || !request.stash(engine.name(), &split.code)
            {
                request.log(Level::Error, "cannot keep the code with the request");
                return rlm_rcodes_RLM_MODULE_FAIL;
            }
        }
        if out.outcome == Some(Outcome::Ok) {
            if !request.keep_mark(Slot::Verified, engine.name()) {
                request.log(Level::Error, "cannot keep a mark with the request");
                return rlm_rcodes_RLM_MODULE_FAIL;
            }
            if request.is_inner() {
                let name = request.bytes(List::Request, PW_USER_NAME);
                let user = match engine.duty(name) {
                    Duty::Required(user) => user,
                    Duty::NotRequired => String::from_utf8_lossy(name.unwrap_or_default()).into_owned(),
                };
                post_auth::inner_verified(&mut request, engine.name(), &user);
            }
        }
        rcode(out.outcome)
    })
}

/// How an Accept came about, for the log line of a refused one: `Auth-Type "PAP",
/// EAP-Type "MD5", virtual server "default"`.
fn accept_path(request: &Request<'_>) -> String {
    let mut path = match request.auth_type() {
        Some(t) => format!("Auth-Type \"{t}\""),
        None => "no Auth-Type".to_string(),
    };
    if let Some(eap) = request.eap_type() {
        path.push_str(&format!(", EAP-Type \"{eap}\""));
    }
    path.push_str(&format!(", virtual server \"{}\"", request.server()));
    path
}

/// Reply attributes that make an Accept useful, removed when post-auth refuses it:
/// the EAP-Success inside, and the keys an EAP method derived (MS-MPPE-*, vendor 311).
const ACCEPT_ONLY: [(u32, u32); 3] = [(PW_EAP_MESSAGE, 0), (16, 311), (17, 311)];

unsafe extern "C" fn mod_post_auth(instance: *mut c_void, raw: *mut REQUEST) -> rlm_rcode_t {
    let counters = counters(instance);
    with_engine(instance, raw, |engine, mut request| {
        let code = request.reply_code();
        if code == PW_CODE_PW_CODE_ACCESS_REJECT || code == PW_CODE_PW_CODE_ACCESS_CHALLENGE {
            return rlm_rcodes_RLM_MODULE_NOOP;
        }
        let verified_here = request.take_mark(Slot::Verified, engine.name());
        let tunnel = if request.is_inner() || verified_here {
            vec![]
        } else {
            post_auth::outer_records(&request, engine.name())
        };
        // The path an Accept came through is named only when the Accept is refused:
        // a login verified here (every accepted code) skips formatting it.
        let path = if verified_here { String::new() } else { accept_path(&request) };
        let out = engine.post_auth(PostAuthInput {
            user_name: request.bytes(List::Request, PW_USER_NAME),
            verified_here,
            tunnel,
            path: &path,
            quiet: !request.debug_enabled(),
        });
        if let Some(counters) = counters {
            counters.count(out.tally());
        }
        for line in &out.log {
            request.log(line.level, &line.text);
        }
        if out.outcome == Outcome::Reject {
            for (attr, vendor) in ACCEPT_ONLY {
                request.delete_reply(attr, vendor);
            }
        }
        rcode(Some(out.outcome))
    })
}

//! rlm_mfa: multi-factor authentication for FreeRADIUS 3.2, as the module
//! FreeRADIUS loads (`rlm_mfa.so`).
//!
//! This crate is only the FreeRADIUS side, and the only place with `unsafe`:
//! bindings, the exported `module_t`, the configuration table, the view of a
//! request and the panic guard around every callback (`src/ffi/`, feature
//! `freeradius`). Everything it decides is in `mfa_core`, plain Rust that never
//! sees a pointer.

#[cfg(feature = "freeradius")]
mod ffi;

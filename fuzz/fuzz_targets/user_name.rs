#![no_main]
// Body and checks: mfa_core::fuzzing::user_name (crates/mfa-core/src/fuzzing/).
libfuzzer_sys::fuzz_target!(|data: &[u8]| mfa_core::fuzzing::user_name(data));

#![no_main]
// Body and checks: mfa_core::fuzzing::token_file (crates/mfa-core/src/fuzzing/).
libfuzzer_sys::fuzz_target!(|data: &[u8]| mfa_core::fuzzing::token_file(data));

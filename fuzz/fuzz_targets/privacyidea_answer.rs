#![no_main]
// Body and checks: mfa_core::fuzzing::privacyidea_answer (crates/mfa-core/src/fuzzing/).
libfuzzer_sys::fuzz_target!(|data: &[u8]| mfa_core::fuzzing::privacyidea_answer(data));

#![no_main]
// Body and checks: rlm_mfa::fuzzing::state_unseal (src/fuzzing/).
libfuzzer_sys::fuzz_target!(|data: &[u8]| rlm_mfa::fuzzing::state_unseal(data));

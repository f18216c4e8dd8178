#![no_main]
// Body and checks: rlm_mfa::fuzzing::transaction_state (src/fuzzing/).
libfuzzer_sys::fuzz_target!(|data: &[u8]| rlm_mfa::fuzzing::transaction_state(data));

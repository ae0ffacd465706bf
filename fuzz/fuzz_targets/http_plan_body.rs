//! Fuzz target: `quantum_governor::fuzz_targets::http_plan_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantum_governor::fuzz_targets::http_plan_body(data);
});

//! Fuzz target: `quantum_governor::fuzz_targets::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantum_governor::fuzz_targets::config(data);
});

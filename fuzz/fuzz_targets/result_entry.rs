//! Fuzz target: `quantum_governor::fuzz_targets::result_entry`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantum_governor::fuzz_targets::result_entry(data);
});

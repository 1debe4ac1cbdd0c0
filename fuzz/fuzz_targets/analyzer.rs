//! The log analyzer with the built-in knowledge base on arbitrary log bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pipeguard_core::fuzzing::analyze_bytes(data);
});

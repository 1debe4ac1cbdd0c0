//! The shell parser and the safety assessment on arbitrary command text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pipeguard_core::fuzzing::assess_bytes(data);
});

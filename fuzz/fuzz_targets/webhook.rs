//! Every platform's webhook intake (credential check, verification, parsing, name check) on
//! arbitrary deliveries; byte 0 picks the platform (see `pipeguard_platforms::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pipeguard_platforms::fuzzing::deliver(data);
});

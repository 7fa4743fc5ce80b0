//! Arbitrary messages through a session's frame handling: decode, classify,
//! payload checks and masked log formatting. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    isp_cluster::fuzz_frame(data);
});

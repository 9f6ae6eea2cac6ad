#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rum_bridge_fuzz::boomerang_beacon(data));

#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| nixery_fuzz::nar(data));

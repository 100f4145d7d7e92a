#![no_main]
//! `cargo fuzz run --sanitizer none header_value`: see `agm_fuzz::header_value`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::header_value(data);
});

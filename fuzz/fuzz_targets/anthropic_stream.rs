#![no_main]
//! `cargo fuzz run --sanitizer none anthropic_stream`: see `agm_fuzz::anthropic_stream`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::anthropic_stream(data);
});

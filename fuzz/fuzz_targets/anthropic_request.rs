#![no_main]
//! `cargo fuzz run --sanitizer none anthropic_request`: see `agm_fuzz::anthropic_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::anthropic_request(data);
});

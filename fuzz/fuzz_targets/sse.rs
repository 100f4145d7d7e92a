#![no_main]
//! `cargo fuzz run --sanitizer none sse`: see `agm_fuzz::sse`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::sse(data);
});

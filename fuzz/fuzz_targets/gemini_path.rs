#![no_main]
//! `cargo fuzz run --sanitizer none gemini_path`: see `agm_fuzz::gemini_path`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::gemini_path(data);
});

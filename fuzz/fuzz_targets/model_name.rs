#![no_main]
//! `cargo fuzz run --sanitizer none model_name`: see `agm_fuzz::model_name`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::model_name(data);
});

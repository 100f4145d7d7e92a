#![no_main]
//! `cargo fuzz run --sanitizer none schema`: see `agm_fuzz::schema`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::schema(data);
});

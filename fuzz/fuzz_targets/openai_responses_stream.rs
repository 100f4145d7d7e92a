#![no_main]
//! `cargo fuzz run --sanitizer none openai_responses_stream`: see `agm_fuzz::openai_responses_stream`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::openai_responses_stream(data);
});

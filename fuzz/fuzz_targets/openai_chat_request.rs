#![no_main]
//! `cargo fuzz run --sanitizer none openai_chat_request`: see `agm_fuzz::openai_chat_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agm_fuzz::openai_chat_request(data);
});

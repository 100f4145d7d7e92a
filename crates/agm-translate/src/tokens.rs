//! A local estimate of a request's input tokens, for when Google cannot count them
//! (the server's `count_tokens` falls back to it when the upstream `countTokens`
//! fails on Google's side, and says so).
//!
//! No tokenizer is shipped, so this is a documented heuristic, meant to err on the
//! high side (a client deciding when to compact its context is better served by a
//! count that is a little high than by one that is low):
//!
//! - Text: one token per 4 ASCII characters (English prose and code average 3.5 to 4.5
//!   characters per token in Gemini's and Claude's tokenizers), and one token per
//!   other character (CJK runs about one token per character; accented letters, rarer
//!   in mixed text, are over-counted).
//! - Each turn costs [`TURN_TOKENS`] for its role markers, each function call or
//!   result [`CALL_TOKENS`] plus its name and its JSON arguments or response as text.
//! - An image (inline or by URI) costs [`IMAGE_TOKENS`]; any other media (PDFs and
//!   other documents, audio, video) [`MEDIA_TOKENS`]. Their size or page count is not
//!   looked at.
//! - The system instruction counts like a turn; each tool counts as its JSON
//!   declaration (name, description, parameter schema) as text.

use agm_wire::gemini::{Content, GenerateContentRequest, Part};

/// Role markers and separators of one turn.
pub const TURN_TOKENS: u64 = 4;

/// The framing of one function call or function result.
pub const CALL_TOKENS: u64 = 8;

/// One image: Anthropic's cost of the largest image it takes unscaled (about 1.15
/// megapixels, width × height / 750 ≈ 1,568 tokens); Gemini charges 258 tokens per
/// 768 × 768 tile, about 1,300 for the same image.
pub const IMAGE_TOKENS: u64 = 1_600;

/// One document, audio or video part: about two PDF pages as Anthropic counts them
/// (text plus page image, 1,500 to 3,000 tokens a page at Gemini's 258).
pub const MEDIA_TOKENS: u64 = 3_000;

/// The estimated input tokens of `request`: contents, system instruction and tools.
pub fn estimate(request: &GenerateContentRequest) -> u64 {
    let mut total: u64 = request.contents.iter().map(content_tokens).sum();
    if let Some(system) = &request.system_instruction {
        total += content_tokens(system);
    }
    for tool in &request.tools {
        total += json_tokens(tool);
    }
    total
}

/// The estimated tokens of one message.
pub fn estimate_content(content: &Content) -> u64 {
    content_tokens(content)
}

/// The estimated tokens of some text.
pub fn text_tokens(text: &str) -> u64 {
    let mut counter = CharCounter::default();
    counter.add(text.as_bytes());
    counter.tokens()
}

/// Counts ASCII and other characters of UTF-8 bytes as they come (a character other
/// than ASCII is its leading byte; continuation bytes are not counted).
#[derive(Default)]
struct CharCounter {
    ascii: u64,
    other: u64,
}

impl CharCounter {
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b.is_ascii() {
                self.ascii += 1;
            } else if b & 0xC0 != 0x80 {
                self.other += 1;
            }
        }
    }

    fn tokens(&self) -> u64 {
        self.ascii.div_ceil(4) + self.other
    }
}

impl std::io::Write for CharCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.add(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The estimated tokens of a value's JSON, counted as it is written (no string is
/// made: this runs on every request when context scaling is on).
fn json_tokens<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    let mut counter = CharCounter::default();
    // Writing to the counter cannot fail, and every value here serializes.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.tokens()
}

fn content_tokens(content: &Content) -> u64 {
    TURN_TOKENS + content.parts.iter().map(part_tokens).sum::<u64>()
}

fn part_tokens(part: &Part) -> u64 {
    let mut tokens = part.text.as_deref().map_or(0, text_tokens);
    if let Some(blob) = &part.inline_data {
        tokens += media_tokens(&blob.mime_type);
    }
    if let Some(file) = &part.file_data {
        tokens += media_tokens(file.mime_type.as_deref().unwrap_or_default());
    }
    if let Some(call) = &part.function_call {
        tokens += CALL_TOKENS + text_tokens(&call.name) + json_tokens(&call.args);
    }
    if let Some(response) = &part.function_response {
        tokens += CALL_TOKENS + text_tokens(&response.name) + json_tokens(&response.response);
    }
    tokens
}

fn media_tokens(mime_type: &str) -> u64 {
    if mime_type.starts_with("image/") {
        IMAGE_TOKENS
    } else {
        MEDIA_TOKENS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agm_wire::gemini::{Blob, FileData, FunctionCall, FunctionDeclaration, Tool};
    use serde_json::json;

    fn user(parts: Vec<Part>) -> GenerateContentRequest {
        GenerateContentRequest {
            contents: vec![Content::new("user", parts)],
            ..GenerateContentRequest::default()
        }
    }

    #[test]
    fn text_is_a_quarter_token_per_ascii_character_and_one_per_other() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        assert_eq!(text_tokens(&"a".repeat(400)), 100);
        assert_eq!(text_tokens("日本語"), 3);
        assert_eq!(text_tokens("café"), 2);
        assert_eq!(estimate(&GenerateContentRequest::default()), 0);
        assert_eq!(estimate(&user(vec![Part::text("a".repeat(400))])), 104);
    }

    #[test]
    fn media_costs_fixed_amounts() {
        let image = Part {
            inline_data: Some(Blob {
                mime_type: "image/png".into(),
                data: "iVBO".repeat(10_000),
            }),
            ..Part::default()
        };
        let pdf = Part {
            file_data: Some(FileData {
                mime_type: Some("application/pdf".into()),
                file_uri: "https://e.com/a.pdf".into(),
            }),
            ..Part::default()
        };
        assert_eq!(estimate(&user(vec![image])), TURN_TOKENS + IMAGE_TOKENS);
        assert_eq!(estimate(&user(vec![pdf])), TURN_TOKENS + MEDIA_TOKENS);
    }

    #[test]
    fn system_tools_and_calls_count() {
        let mut request = user(vec![Part::text("hi")]);
        let plain = estimate(&request);
        assert_eq!(plain, TURN_TOKENS + 1);
        request.system_instruction = Some(Content::new("user", vec![Part::text("x".repeat(40))]));
        assert_eq!(estimate(&request), plain + TURN_TOKENS + 10);
        let with_system = estimate(&request);
        request.tools = vec![Tool {
            function_declarations: vec![FunctionDeclaration {
                name: "read_file".into(),
                description: "Reads a file".into(),
                parameters: Some(
                    json!({"type": "object", "properties": {"path": {"type": "string"}}}),
                ),
            }],
            ..Tool::default()
        }];
        let declared = serde_json::to_string(&request.tools[0]).unwrap();
        assert_eq!(estimate(&request), with_system + text_tokens(&declared));
        request.contents.push(Content::new(
            "model",
            vec![Part {
                function_call: Some(FunctionCall {
                    id: None,
                    name: "read_file".into(),
                    args: json!({"path": "a.rs"}),
                }),
                ..Part::default()
            }],
        ));
        assert!(estimate(&request) > with_system + text_tokens(&declared) + CALL_TOKENS);
    }
}

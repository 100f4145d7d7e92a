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

/// How many bytes match: in runs of 255 with a byte-wide count, which the compiler
/// turns into vector instructions (16 or 32 bytes at a time).
fn count_where(bytes: &[u8], matches: impl Fn(u8) -> bool) -> u64 {
    bytes
        .chunks(255)
        .map(|run| {
            u64::from(
                run.iter()
                    .fold(0u8, |n, &b| n.wrapping_add(u8::from(matches(b)))),
            )
        })
        .sum()
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
        // A non-ASCII character is counted by its leading byte (0xC0 and up;
        // continuation bytes are below).
        self.ascii += count_where(bytes, |b| b < 0x80);
        self.other += count_where(bytes, |b| b >= 0xC0);
    }

    /// A JSON string as serde_json writes it: quoted, with `"`, `\\` and control
    /// characters escaped (`\n` and its like in two characters, the rest as `\u00XX`).
    fn add_json_string(&mut self, text: &str) {
        let bytes = text.as_bytes();
        self.add(bytes);
        let escaped = count_where(bytes, |b| b == b'"' || b == b'\\' || b < 0x20);
        let long = count_where(bytes, |b| {
            b < 0x20 && !matches!(b, 0x08 | 0x09 | 0x0A | 0x0C | 0x0D)
        });
        self.ascii += 2 + escaped + 4 * long;
    }

    /// A JSON value as serde_json writes it compactly, without writing it.
    fn add_json(&mut self, value: &serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::Null => self.ascii += 4,
            Value::Bool(b) => self.ascii += if *b { 4 } else { 5 },
            Value::Number(n) => {
                let _ = std::io::Write::write_fmt(self, format_args!("{n}"));
            }
            Value::String(s) => self.add_json_string(s),
            Value::Array(items) => {
                self.ascii += 2 + items.len().saturating_sub(1) as u64;
                for item in items {
                    self.add_json(item);
                }
            }
            Value::Object(map) => {
                // Braces, a colon per entry and the commas between them.
                self.ascii += 2 + map.len() as u64 + map.len().saturating_sub(1) as u64;
                for (key, item) in map {
                    self.add_json_string(key);
                    self.add_json(item);
                }
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

/// The estimated tokens of a JSON value's compact text, counted without writing it
/// (this runs on every request when context scaling is on).
fn value_tokens(value: &serde_json::Value) -> u64 {
    let mut counter = CharCounter::default();
    counter.add_json(value);
    counter.tokens()
}

/// The estimated tokens of a value's JSON, counted as it is written (no string is
/// made).
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
        tokens += CALL_TOKENS + text_tokens(&call.name) + value_tokens(&call.args);
    }
    if let Some(response) = &part.function_response {
        tokens += CALL_TOKENS + text_tokens(&response.name) + value_tokens(&response.response);
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

    #[test]
    fn json_is_counted_as_serde_json_writes_it() {
        let values = [
            json!(null),
            json!({"path": "a.rs", "n": [1, 2.5, -3, true, false, null], "e": {}}),
            json!({"output": "line\n\ttab \"quoted\" back\\slash \u{1} bell \u{8} é 日本"}),
            json!([[], {"k\"ey": ["x"]}, 1e300, u64::MAX]),
        ];
        for value in values {
            let written = text_tokens(&value.to_string());
            assert_eq!(value_tokens(&value), written, "{value}");
            assert_eq!(json_tokens(&value), written, "{value}");
        }
    }
}

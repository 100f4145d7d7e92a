//! Reading what Google sends: a generation answer or stream chunk, in the Cloud Code
//! envelope (`{"response": {...}, "traceId": ...}`) or bare (the official Gemini API).

use agm_wire::cloudcode::GoogleError;
use agm_wire::gemini::GenerateContentResponse;
use serde_json::Value;

/// One `data:` payload of an upstream stream, or a whole non-streamed body.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamChunk {
    /// A (partial) answer.
    Response(GenerateContentResponse),
    /// An error sent inside a 200 stream (`{"error": {...}}`).
    Error(GoogleError),
    /// Nothing: an empty `data:` line, whitespace, or `[DONE]`.
    Empty,
}

/// Parses one upstream payload, unwrapping the Cloud Code envelope when present.
pub fn parse_chunk(data: &str) -> Result<UpstreamChunk, serde_json::Error> {
    let data = data.trim();
    if data.is_empty() || data == "[DONE]" {
        return Ok(UpstreamChunk::Empty);
    }
    let mut value: Value = serde_json::from_str(data)?;
    if let Some(error) = value.get_mut("error").filter(|e| e.is_object()) {
        return Ok(UpstreamChunk::Error(serde_json::from_value(error.take())?));
    }
    let inner = match value.get_mut("response") {
        Some(response) if response.is_object() => response.take(),
        _ => value,
    };
    Ok(UpstreamChunk::Response(serde_json::from_value(inner)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_envelopes_and_errors() {
        let wrapped = r#"{"response":{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]}}],"responseId":"r1"},"traceId":"t"}"#;
        let bare = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]}}],"responseId":"r1"}"#;
        let (Ok(UpstreamChunk::Response(a)), Ok(UpstreamChunk::Response(b))) =
            (parse_chunk(wrapped), parse_chunk(bare))
        else {
            panic!("responses expected");
        };
        assert_eq!(a, b);
        assert_eq!(a.parts()[0].text.as_deref(), Some("hi"));
        assert_eq!(parse_chunk("  ").ok(), Some(UpstreamChunk::Empty));
        let Ok(UpstreamChunk::Error(e)) = parse_chunk(
            r#"{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}"#,
        ) else {
            panic!("error expected");
        };
        assert_eq!(e.code, 429);
        assert!(parse_chunk("{not json").is_err());
    }
}

//! Reading a client's JSON body into wire types, with errors that name the field.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::http::error::{ApiError, ApiKind, ErrorKind};

/// Parses `body` as `T`. A body over the limit is a 413, anything else wrong a 400 whose
/// message names the field (`messages[0].content: invalid type ...`).
pub fn parse_json<T: DeserializeOwned>(
    api: ApiKind,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                api,
                ErrorKind::PayloadTooLarge,
                "the request body is larger than server.max_body allows",
            )
        } else {
            ApiError::invalid(api, format!("cannot read the request body: {rejection}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            api,
            "the request body is empty: send a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(api, format!("the request body is not valid JSON: {inner}"));
        }
        let message = without_location(&inner.to_string());
        let path = e.path().to_string();
        if path == "." {
            ApiError::invalid(api, message)
        } else {
            ApiError::invalid(api, format!("{path}: {message}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid(api, format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 30"; the field path says more.
fn without_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        model: String,
        max_tokens: u32,
        messages: Vec<Msg>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Msg {
        role: String,
    }

    fn parse(body: &str) -> Result<Req, ApiError> {
        parse_json(ApiKind::Anthropic, Ok(Bytes::from(body.to_owned())))
    }

    #[test]
    fn names_the_field() {
        let e = parse(r#"{"model":"m","max_tokens":"lots","messages":[]}"#).unwrap_err();
        assert_eq!(
            e.message,
            r#"max_tokens: invalid type: string "lots", expected u32"#
        );
        let e = parse(r#"{"model":"m","max_tokens":1,"messages":[{"role":5}]}"#).unwrap_err();
        assert!(
            e.message.starts_with("messages[0].role: invalid type"),
            "{}",
            e.message
        );
        let e = parse(r#"{"max_tokens":1,"messages":[]}"#).unwrap_err();
        assert_eq!(e.message, "missing field `model`");
    }

    #[test]
    fn syntax_and_empty() {
        let e = parse("{not json").unwrap_err();
        assert!(
            e.message.starts_with("the request body is not valid JSON"),
            "{}",
            e.message
        );
        let e = parse("  ").unwrap_err();
        assert!(e.message.contains("empty"));
        let e = parse(r#"{"model":"m","max_tokens":1,"messages":[]} trailing"#).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }
}

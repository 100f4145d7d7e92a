//! What a handler answers, and how that becomes an HTTP response (including
//! paced, broken and empty streams).

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use serde_json::Value;

/// How a stream of chunks is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamFormat {
    /// `text/event-stream`, one `data: <json>\r\n\r\n` per chunk.
    Sse,
    /// The REST form: one JSON array, written element by element.
    JsonArray,
}

/// A handler's answer, rendered by [`Answer::into_response`].
#[derive(Debug)]
pub(crate) enum Answer {
    Json {
        status: StatusCode,
        body: Value,
        headers: Vec<(String, String)>,
    },
    Text {
        status: StatusCode,
        text: String,
    },
    Redirect(String),
    Stream {
        chunks: Vec<Value>,
        format: StreamFormat,
        delay: Duration,
        break_after: Option<usize>,
    },
    /// 200 with this content type and no body.
    Empty {
        content_type: &'static str,
    },
    /// 200 headers, then the connection is cut before any body byte.
    Abort {
        content_type: &'static str,
    },
}

const JSON: &str = "application/json; charset=UTF-8";
const SSE: &str = "text/event-stream";

impl Answer {
    pub fn ok(body: Value) -> Self {
        Answer::Json {
            status: StatusCode::OK,
            body,
            headers: Vec::new(),
        }
    }

    pub fn text(status: StatusCode, text: impl Into<String>) -> Self {
        Answer::Text {
            status,
            text: text.into(),
        }
    }

    /// True for a 2xx answer (the ones that `EmptyBody`/`BreakStreamAfter` faults reshape).
    pub fn is_success(&self) -> bool {
        match self {
            Answer::Json { status, .. } | Answer::Text { status, .. } => status.is_success(),
            Answer::Redirect(_) => false,
            Answer::Stream { .. } | Answer::Empty { .. } | Answer::Abort { .. } => true,
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Answer::Stream {
                format: StreamFormat::Sse,
                ..
            } => SSE,
            Answer::Text { .. } => "text/plain; charset=utf-8",
            Answer::Empty { content_type } | Answer::Abort { content_type } => content_type,
            _ => JSON,
        }
    }

    /// The same answer with its body cut after `chunks` chunks (or before any byte).
    pub fn broken_after(self, chunks: usize) -> Self {
        match self {
            Answer::Stream {
                chunks: all,
                format,
                delay,
                ..
            } => Answer::Stream {
                chunks: all,
                format,
                delay,
                break_after: Some(chunks),
            },
            other => Answer::Abort {
                content_type: other.content_type(),
            },
        }
    }

    /// The same answer as a 200 with an empty body.
    pub fn emptied(self) -> Self {
        Answer::Empty {
            content_type: self.content_type(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Json {
                status,
                body,
                headers,
            } => {
                let mut response =
                    (status, [(header::CONTENT_TYPE, JSON)], body.to_string()).into_response();
                for (name, value) in headers {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::try_from(name.as_str()),
                        HeaderValue::try_from(value.as_str()),
                    ) {
                        response.headers_mut().append(name, value);
                    }
                }
                response
            }
            Answer::Text { status, text } => (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text,
            )
                .into_response(),
            Answer::Redirect(location) => match HeaderValue::try_from(location) {
                Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
                Err(_) => {
                    (StatusCode::BAD_REQUEST, "redirect_uri is not a valid URL").into_response()
                }
            },
            Answer::Empty { content_type } => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                Body::empty(),
            )
                .into_response(),
            Answer::Abort { content_type } => {
                let body = Body::from_stream(stream::once(async {
                    let_head_out().await;
                    Err::<Bytes, io::Error>(aborted())
                }));
                (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
            }
            Answer::Stream {
                chunks,
                format,
                delay,
                break_after,
            } => {
                let content_type = if format == StreamFormat::Sse {
                    SSE
                } else {
                    JSON
                };
                let body = Body::from_stream(chunk_stream(chunks, format, delay, break_after));
                (
                    StatusCode::OK,
                    [
                        (header::CONTENT_TYPE, content_type),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    body,
                )
                    .into_response()
            }
        }
    }
}

/// Lets hyper flush what it has buffered (the head and earlier chunks) before the
/// body fails, so the client sees the chunks and then a cut connection.
async fn let_head_out() {
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "agm-sim: scripted stream break",
    )
}

/// One stream frame: the bytes to send, or the scripted break.
enum Frame {
    Bytes(Bytes),
    Break,
}

/// The frames of a stream, in order; `delay` is applied before every chunk but the first.
fn frames(chunks: Vec<Value>, format: StreamFormat, break_after: Option<usize>) -> Vec<Frame> {
    let total = chunks.len();
    let mut frames = Vec::with_capacity(total + 2);
    for (index, chunk) in chunks.into_iter().enumerate() {
        if break_after == Some(index) {
            frames.push(Frame::Break);
            return frames;
        }
        let text = match format {
            StreamFormat::Sse => format!("data: {chunk}\r\n\r\n"),
            StreamFormat::JsonArray if index == 0 => format!("[{chunk}"),
            StreamFormat::JsonArray => format!(",\r\n{chunk}"),
        };
        frames.push(Frame::Bytes(Bytes::from(text)));
    }
    if break_after.is_some() {
        frames.push(Frame::Break);
    } else if format == StreamFormat::JsonArray {
        frames.push(Frame::Bytes(Bytes::from_static(if total == 0 {
            b"[]"
        } else {
            b"]"
        })));
    }
    frames
}

fn chunk_stream(
    chunks: Vec<Value>,
    format: StreamFormat,
    delay: Duration,
    break_after: Option<usize>,
) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let frames = frames(chunks, format, break_after).into_iter().enumerate();
    stream::unfold(frames, move |mut frames| async move {
        let (index, frame) = frames.next()?;
        if index > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match frame {
            Frame::Bytes(bytes) => Some((Ok(bytes), frames)),
            Frame::Break => {
                let_head_out().await;
                Some((Err(aborted()), frames))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                Frame::Break => "<break>".to_owned(),
            })
            .collect()
    }

    #[test]
    fn sse_frames_and_break() {
        let chunks = vec![json!(1), json!(2), json!(3)];
        assert_eq!(
            texts(&frames(chunks.clone(), StreamFormat::Sse, None)),
            ["data: 1\r\n\r\n", "data: 2\r\n\r\n", "data: 3\r\n\r\n"]
        );
        assert_eq!(
            texts(&frames(chunks, StreamFormat::Sse, Some(1))),
            ["data: 1\r\n\r\n", "<break>"]
        );
    }

    #[test]
    fn json_array_frames() {
        let joined: String = texts(&frames(
            vec![json!(1), json!(2)],
            StreamFormat::JsonArray,
            None,
        ))
        .concat();
        assert_eq!(
            serde_json::from_str::<Value>(&joined).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            texts(&frames(vec![], StreamFormat::JsonArray, None)),
            ["[]"]
        );
    }
}

//! Scripted faults: what a test tells the sim to do instead of (or before) answering.

use std::time::Duration;

pub use agm_wire::duration::parse_go_duration;

use serde_json::{Value, json};

use crate::SimMethod;
use crate::clock;

/// A scripted fault, queued with [`Sim::script`](crate::Sim::script).
///
/// A fault matches a request when each filter that is set equals the request's
/// method, account (e-mail) and model. Faults are tried in queue order; the first
/// matching one with `times` left is used and its `times` goes down by one
/// (`usize::MAX` never runs out).
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Only requests to this endpoint (`None`: any).
    pub method: Option<SimMethod>,
    /// Only requests from this account's e-mail (`None`: any, including anonymous).
    pub account: Option<String>,
    /// Only requests for this model (`None`: any, including requests without a model).
    pub model: Option<String>,
    /// How many matching requests it hits; `usize::MAX` = forever.
    pub times: usize,
    /// The chance (0–1) that it hits a matching request; a miss leaves it queued and
    /// the request looks further down the queue. 1 unless [`Fault::sometimes`].
    pub probability: f64,
    /// What happens to those requests.
    pub action: FaultAction,
}

/// What a fault does to a matching request.
///
/// `Status` and `Delay` act as soon as the request has been captured, before
/// authentication and validation. `EmptyBody`, `BreakStreamAfter` and `Reply` shape a
/// successful answer: they are only used up by a request that passed authentication
/// and validation (a rejected request gets its error and leaves them queued).
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    /// Answer with this status, JSON body and extra headers.
    Status {
        /// HTTP status code.
        status: u16,
        /// JSON body (usually Google's `{"error":{...}}`).
        body: Value,
        /// Extra response headers, e.g. `("retry-after", "2")`.
        headers: Vec<(String, String)>,
    },
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Answer 200 with an empty body (a stream: the SSE headers and no data lines).
    EmptyBody,
    /// Send this many stream chunks, then abort the connection mid-body
    /// (a non-streaming answer is aborted before any byte of the body).
    BreakStreamAfter(usize),
    /// Generate this reply instead of the default one (generation methods only).
    Reply(ScriptedReply),
}

/// A reply a generation request answers with instead of the default text.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptedReply {
    /// Gemini parts, e.g. `{"text": ...}`, `{"functionCall": {"name", "args", "id"}}`,
    /// `{"text": ..., "thought": true, "thoughtSignature": ...}`. A stream sends each
    /// part as its own chunk.
    pub parts: Vec<Value>,
    /// `finishReason` of the candidate, e.g. `STOP`, `MAX_TOKENS`, `SAFETY`.
    pub finish_reason: String,
    /// `usageMetadata` to report; `None`: estimated like the default reply.
    pub usage: Option<Value>,
}

impl ScriptedReply {
    /// A reply of one text part, finishing `STOP`.
    pub fn text(text: &str) -> Self {
        ScriptedReply {
            parts: vec![json!({ "text": text })],
            finish_reason: "STOP".to_owned(),
            usage: None,
        }
    }

    /// A reply of one `functionCall` part (with an id), finishing `STOP`.
    pub fn function_call(name: &str, args: Value, id: &str) -> Self {
        ScriptedReply {
            parts: vec![json!({ "functionCall": { "name": name, "args": args, "id": id } })],
            finish_reason: "STOP".to_owned(),
            usage: None,
        }
    }

    /// A reply of the given parts, finishing `STOP`.
    pub fn parts(parts: Vec<Value>) -> Self {
        ScriptedReply {
            parts,
            finish_reason: "STOP".to_owned(),
            usage: None,
        }
    }

    /// Adds one more part.
    pub fn with_part(mut self, part: Value) -> Self {
        self.parts.push(part);
        self
    }

    /// Sets the finish reason.
    pub fn with_finish_reason(mut self, reason: &str) -> Self {
        reason.clone_into(&mut self.finish_reason);
        self
    }

    /// Sets the `usageMetadata` reported.
    pub fn with_usage(mut self, usage: Value) -> Self {
        self.usage = Some(usage);
        self
    }
}

impl Fault {
    /// A fault doing `action` once, on requests to `method` (`None`: any).
    pub fn new(method: impl Into<Option<SimMethod>>, action: FaultAction) -> Self {
        Fault {
            method: method.into(),
            account: None,
            model: None,
            times: 1,
            probability: 1.0,
            action,
        }
    }

    /// Google's 429 for a per-model rate limit (docs/PROTOCOL.md §3): `RESOURCE_EXHAUSTED`
    /// with an `ErrorInfo` (`RATE_LIMIT_EXCEEDED`, `quotaResetDelay`,
    /// `quotaResetTimeStamp`) and a `RetryInfo`. `delay` is a Go-style duration
    /// such as `"539.477544ms"`, `"42s"` or `"1h16m0s"`.
    pub fn rate_limited(method: impl Into<Option<SimMethod>>, delay: &str) -> Self {
        Fault::new(method, quota_action("RATE_LIMIT_EXCEEDED", None, delay))
    }

    /// Like [`Fault::rate_limited`], for every request naming `model` (any
    /// generation or countTokens method), with the model in the `ErrorInfo` metadata.
    pub fn rate_limited_model(model: &str, delay: &str) -> Self {
        let mut fault = Fault::new(
            None,
            quota_action("RATE_LIMIT_EXCEEDED", Some(model), delay),
        );
        fault.model = Some(model.to_owned());
        fault
    }

    /// A 429 `QUOTA_EXHAUSTED`: the quota is gone until `delay` from now.
    pub fn quota_exhausted(method: impl Into<Option<SimMethod>>, delay: &str) -> Self {
        Fault::new(method, quota_action("QUOTA_EXHAUSTED", None, delay))
    }

    /// A 503 `UNAVAILABLE` with reason `MODEL_CAPACITY_EXHAUSTED` (Google is out of capacity).
    pub fn capacity_exhausted(method: impl Into<Option<SimMethod>>) -> Self {
        let body = json!({ "error": {
            "code": 503,
            "message": "No capacity available for model on the server",
            "status": "UNAVAILABLE",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "MODEL_CAPACITY_EXHAUSTED",
                "domain": "cloudcode-pa.googleapis.com",
            }],
        }});
        Fault::new(
            method,
            FaultAction::Status {
                status: 503,
                body,
                headers: Vec::new(),
            },
        )
    }

    /// A 403 `PERMISSION_DENIED` with reason `VALIDATION_REQUIRED` and the
    /// `validationUrl` the user must visit.
    pub fn validation_required(method: impl Into<Option<SimMethod>>, validation_url: &str) -> Self {
        let body = json!({ "error": {
            "code": 403,
            "message": format!("Verify your account to continue. Visit {validation_url}"),
            "status": "PERMISSION_DENIED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "VALIDATION_REQUIRED",
                "domain": "cloudcode-pa.googleapis.com",
                "metadata": { "validationUrl": validation_url },
            }],
        }});
        Fault::new(
            method,
            FaultAction::Status {
                status: 403,
                body,
                headers: Vec::new(),
            },
        )
    }

    /// Google's bare error shape `{"error":{"code","message","status"}}` with this
    /// status code, status string (e.g. `"INTERNAL"`) and message.
    pub fn status(
        method: impl Into<Option<SimMethod>>,
        code: u16,
        status: &str,
        message: &str,
    ) -> Self {
        let body = json!({ "error": { "code": code, "message": message, "status": status } });
        Fault::new(
            method,
            FaultAction::Status {
                status: code,
                body,
                headers: Vec::new(),
            },
        )
    }

    /// Wait `delay`, then answer normally.
    pub fn delay(method: impl Into<Option<SimMethod>>, delay: Duration) -> Self {
        Fault::new(method, FaultAction::Delay(delay))
    }

    /// Answer 200 with an empty body.
    pub fn empty_body(method: impl Into<Option<SimMethod>>) -> Self {
        Fault::new(method, FaultAction::EmptyBody)
    }

    /// Send `chunks` stream chunks, then abort the connection.
    pub fn break_stream_after(method: impl Into<Option<SimMethod>>, chunks: usize) -> Self {
        Fault::new(method, FaultAction::BreakStreamAfter(chunks))
    }

    /// Answer a generation request with `reply`.
    pub fn reply(method: impl Into<Option<SimMethod>>, reply: ScriptedReply) -> Self {
        Fault::new(method, FaultAction::Reply(reply))
    }

    /// Hit this many matching requests (`usize::MAX`: forever).
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    /// Hit every matching request, forever.
    pub fn always(self) -> Self {
        self.times(usize::MAX)
    }

    /// Hit a matching request only with this chance (0–1), drawn from the sim's seeded
    /// random source ([`SimConfig::seed`](crate::SimConfig)): a fault mix that is
    /// random but the same on every run with the same requests.
    pub fn sometimes(mut self, probability: f64) -> Self {
        self.probability = probability.clamp(0.0, 1.0);
        self
    }

    /// Only for requests from this account.
    pub fn for_account(mut self, email: &str) -> Self {
        self.account = Some(email.to_owned());
        self
    }

    /// Only for requests naming this model.
    pub fn for_model(mut self, model: &str) -> Self {
        self.model = Some(model.to_owned());
        self
    }

    /// Adds a response header (only meaningful for a `Status` action).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let FaultAction::Status { headers, .. } = &mut self.action {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    pub(crate) fn matches(
        &self,
        method: SimMethod,
        account: Option<&str>,
        model: Option<&str>,
    ) -> bool {
        self.times > 0
            && self.method.is_none_or(|m| m == method)
            && self.account.as_deref().is_none_or(|a| Some(a) == account)
            && self.model.as_deref().is_none_or(|m| Some(m) == model)
    }

    /// True for actions that act before authentication and validation.
    pub(crate) fn acts_early(&self) -> bool {
        matches!(
            self.action,
            FaultAction::Status { .. } | FaultAction::Delay(_)
        )
    }
}

fn quota_action(reason: &str, model: Option<&str>, delay: &str) -> FaultAction {
    let wait = parse_go_duration(delay).unwrap_or(Duration::from_secs(1));
    let mut metadata = json!({
        "quotaResetDelay": delay,
        "quotaResetTimeStamp": clock::rfc3339_after(wait),
    });
    if let Some(model) = model {
        metadata["model"] = json!(model);
    }
    let body = json!({ "error": {
        "code": 429,
        "status": "RESOURCE_EXHAUSTED",
        "message": format!(
            "You have exhausted your capacity on this model. Your quota will reset after {}.",
            go_duration_rounded(wait)
        ),
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "cloudcode-pa.googleapis.com",
                "metadata": metadata,
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": seconds_string(wait),
            },
        ],
    }});
    FaultAction::Status {
        status: 429,
        body,
        headers: Vec::new(),
    }
}

/// `0.539477544s`, `42s`: the protobuf Duration JSON form.
fn seconds_string(duration: Duration) -> String {
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        format!("{}s", duration.as_secs())
    } else {
        let fraction = format!("{nanos:09}");
        format!("{}.{}s", duration.as_secs(), fraction.trim_end_matches('0'))
    }
}

/// `1h16m0s` / `42s` / `539ms`: how Google words the delay in its message.
fn go_duration_rounded(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.subsec_millis());
    }
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_body_has_protocol_shape() {
        let fault = Fault::rate_limited_model("gemini-3-flash", "539.477544ms");
        let FaultAction::Status { status, body, .. } = &fault.action else {
            panic!("not a status fault");
        };
        assert_eq!(*status, 429);
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        let info = &body["error"]["details"][0];
        assert_eq!(info["reason"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(info["metadata"]["quotaResetDelay"], "539.477544ms");
        assert_eq!(info["metadata"]["model"], "gemini-3-flash");
        assert_eq!(body["error"]["details"][1]["retryDelay"], "0.539477544s");
        assert_eq!(fault.model.as_deref(), Some("gemini-3-flash"));
    }

    #[test]
    fn matching_respects_filters() {
        let fault = Fault::empty_body(SimMethod::GenerateContent).for_account("a@x");
        assert!(fault.matches(SimMethod::GenerateContent, Some("a@x"), Some("m")));
        assert!(!fault.matches(SimMethod::GenerateContent, Some("b@x"), Some("m")));
        assert!(!fault.matches(SimMethod::GenerateContent, None, None));
        assert!(!fault.matches(SimMethod::CountTokens, Some("a@x"), None));
        assert!(
            !fault
                .times(0)
                .matches(SimMethod::GenerateContent, Some("a@x"), None)
        );
    }
}

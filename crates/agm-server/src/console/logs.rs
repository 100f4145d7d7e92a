//! The request log and the audit log in the admin API: `GET /api/logs` and `GET
//! /api/audit` with filters, and `GET /api/logs/{id}`, one request in detail. Every
//! query parameter is checked: an unknown or malformed one is a 400 that names it and
//! says what it takes. Never a prompt, an answer or a token: the request log holds none.

use std::collections::{BTreeSet, HashMap};

use agm_store::{
    ApiKind, AuditFilter, AuditKind, AuditRecord, RequestLogFilter, RequestLogRecord, StatusFilter,
    rfc3339,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ConsoleError;
use crate::app::SharedState;

type ApiResult = Result<Json<Value>, ConsoleError>;

/// The most rows one answer holds.
pub const MAX_LIMIT: usize = 1000;
/// Rows when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 50;

fn bad(message: String) -> ConsoleError {
    ConsoleError::new(StatusCode::BAD_REQUEST, message)
}

/// The query's parameters, each at most once, empty ones left out (a form sends its
/// empty fields); an unknown one is refused.
fn params(
    pairs: Vec<(String, String)>,
    known: &[&str],
) -> Result<HashMap<String, String>, ConsoleError> {
    let mut out = HashMap::new();
    for (name, value) in pairs {
        if !known.contains(&name.as_str()) {
            return Err(bad(format!(
                "unknown query parameter {:?}: this route takes {}",
                name.chars().take(40).collect::<String>(),
                known.join(", ")
            )));
        }
        let value = value.trim().to_owned();
        if value.is_empty() {
            continue;
        }
        if value.chars().count() > 200 {
            return Err(bad(format!("{name}: at most 200 characters")));
        }
        if out.insert(name.clone(), value).is_some() {
            return Err(bad(format!("{name} is given more than once")));
        }
    }
    Ok(out)
}

/// `limit`: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub fn limit(value: Option<&String>) -> Result<usize, ConsoleError> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=MAX_LIMIT) => Ok(n),
            _ => Err(bad(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}, not {v:?}"
            ))),
        },
    }
}

/// `since` / `until`: an RFC 3339 time (`2026-12-06T10:00:00Z`) or a duration back
/// from `now` (`15m`, `24h`, `7d`).
pub fn point_in_time(
    name: &str,
    value: Option<&String>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ConsoleError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if let Ok(at) = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
        return Ok(Some(at));
    }
    match humantime::parse_duration(value) {
        Ok(back) => Ok(Some(
            now - time::Duration::try_from(back).unwrap_or(time::Duration::MAX),
        )),
        Err(_) => Err(bad(format!(
            "{name} must be an RFC 3339 time (2026-12-06T10:00:00Z) or a duration back from now (15m, 24h, 7d), not {value:?}"
        ))),
    }
}

/// `status`: a code (`429`), a class (`4xx`), `ok` (below 400) or `error`.
pub fn status(value: Option<&String>) -> Result<Option<StatusFilter>, ConsoleError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let lower = value.to_ascii_lowercase();
    let class = lower
        .strip_suffix("xx")
        .and_then(|d| d.parse::<u16>().ok())
        .filter(|d| (1..=5).contains(d));
    Ok(Some(match lower.as_str() {
        "ok" => StatusFilter::Ok,
        "error" => StatusFilter::Error,
        _ => match (class, lower.parse::<u16>()) {
            (Some(class), _) => StatusFilter::Class(class),
            (None, Ok(code)) if (100..=599).contains(&code) => StatusFilter::Code(code),
            _ => {
                return Err(bad(format!(
                    "status must be an HTTP status (429), a class (2xx to 5xx), ok or error, not {value:?}"
                )));
            }
        },
    }))
}

/// A named value from a fixed list.
fn one_of<T: std::str::FromStr>(
    name: &str,
    value: Option<&String>,
    choices: &[&str],
) -> Result<Option<T>, ConsoleError> {
    value
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                bad(format!(
                    "{name} must be one of {}, not {v:?}",
                    choices.join(", ")
                ))
            })
        })
        .transpose()
}

const API_NAMES: &[&str] = &["anthropic", "openai-chat", "openai-responses", "gemini"];
const AUDIT_KINDS: &[&str] = &[
    "safe-mode",
    "account-switch",
    "breaker",
    "account",
    "alert",
    "key",
    "warmup",
    "settings",
];

/// The account ids and e-mails, to name accounts in the answers.
async fn emails(state: &SharedState) -> Result<HashMap<String, String>, ConsoleError> {
    Ok(state
        .store
        .list_account_infos()
        .await
        .map_err(ConsoleError::internal)?
        .into_iter()
        .map(|a| (a.id, a.email))
        .collect())
}

/// `account`: an id or an e-mail; an e-mail must name a stored account, an id may be
/// one removed since.
async fn account_id(
    state: &SharedState,
    value: Option<&String>,
) -> Result<Option<String>, ConsoleError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match state
        .store
        .get_account(value)
        .await
        .map_err(ConsoleError::internal)?
    {
        Some(account) => Ok(Some(account.id)),
        None if value.contains('@') => Err(bad(format!(
            "account: no account {value:?} (give an id or the e-mail of a stored account)"
        ))),
        None => Ok(Some(value.clone())),
    }
}

/// Client key id → name (revoked keys included, while their rows are kept).
pub(super) async fn key_names(
    state: &SharedState,
) -> Result<HashMap<String, String>, ConsoleError> {
    Ok(state
        .store
        .list_client_keys()
        .await
        .map_err(ConsoleError::internal)?
        .into_iter()
        .map(|k| (k.id, k.name))
        .collect())
}

/// Account e-mails and client key names, to show beside the ids a row keeps.
struct Names {
    emails: HashMap<String, String>,
    keys: HashMap<String, String>,
}

async fn names(state: &SharedState) -> Result<Names, ConsoleError> {
    Ok(Names {
        emails: emails(state).await?,
        keys: key_names(state).await?,
    })
}

fn request_json(r: &RequestLogRecord, names: &Names) -> Value {
    let (e, emails) = (&r.entry, &names.emails);
    json!({
        "id": r.id,
        "at": rfc3339(e.at),
        "api": e.api.to_string(),
        "route": e.route,
        "client_model": e.client_model,
        "upstream_model": e.upstream_model,
        "account_id": e.account_id,
        "account_email": e.account_id.as_ref().and_then(|id| emails.get(id)),
        "status": e.status,
        "attempts": e.attempts,
        "latency_ms": e.latency_ms,
        "overhead_ms": e.overhead_us.map(|us| us as f64 / 1000.0),
        "input_tokens": e.input_tokens,
        "output_tokens": e.output_tokens,
        "key_id": e.key_id,
        "key_name": e.key_id.as_ref().and_then(|id| names.keys.get(id)),
        "error_class": e.error_class,
        "context_scaled": e.context_scaled,
    })
}

fn audit_json(r: &AuditRecord) -> Value {
    json!({
        "id": r.id,
        "at": rfc3339(r.event.at),
        "kind": r.event.kind.to_string(),
        "subject": r.event.subject,
        "detail": r.event.detail,
    })
}

/// The request-log filter a query asks for.
async fn request_filter(
    state: &SharedState,
    p: &HashMap<String, String>,
) -> Result<RequestLogFilter, ConsoleError> {
    let now = OffsetDateTime::now_utc();
    Ok(RequestLogFilter {
        since: point_in_time("since", p.get("since"), now)?,
        until: point_in_time("until", p.get("until"), now)?,
        api: one_of::<ApiKind>("api", p.get("api"), API_NAMES)?,
        model: p.get("model").cloned(),
        account_id: account_id(state, p.get("account")).await?,
        status: status(p.get("status"))?,
        text: p.get("q").cloned(),
    })
}

/// `GET /api/logs?since=&until=&api=&model=&account=&status=&q=&limit=`: the request
/// log, newest first, filtered: `since`/`until` an RFC 3339 time or a duration back
/// (`1h`), `api` one of the four client APIs, `model` the client's or the upstream
/// model, `account` an id or e-mail, `status` a code, a class (`5xx`), `ok` or
/// `error`, `q` text in the model, route or error class.
pub async fn logs(
    State(state): State<SharedState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult {
    let p = params(
        pairs,
        &[
            "since", "until", "api", "model", "account", "status", "q", "limit",
        ],
    )?;
    let limit = limit(p.get("limit"))?;
    let filter = request_filter(&state, &p).await?;
    let rows = state
        .store
        .search_request_log(filter, limit)
        .await
        .map_err(ConsoleError::internal)?;
    let names = names(&state).await?;
    let out: Vec<Value> = rows.iter().map(|r| request_json(r, &names)).collect();
    Ok(Json(json!({"requests": out})))
}

/// `GET /api/logs/{id}`: one request in detail: its row, each upstream call (which
/// account, how long agm waited before it, how it failed) while the server still
/// holds them, and the audit entries of its accounts around it.
pub async fn request(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult {
    let id: i64 = id.parse().map_err(|_| {
        bad(format!(
            "{:?} is not a request id (a whole number from the log)",
            id.chars().take(40).collect::<String>()
        ))
    })?;
    let record = state
        .store
        .get_request_log(id)
        .await
        .map_err(ConsoleError::internal)?
        .ok_or_else(|| {
            ConsoleError::new(
                StatusCode::NOT_FOUND,
                format!("no request {id} in the log (pruned after [logging] request_log_retention, or never logged)"),
            )
        })?;
    let names = names(&state).await?;
    let emails = &names.emails;
    let calls = state.request_log.traces.find(&record.entry);
    let mut accounts: BTreeSet<String> = record.entry.account_id.iter().cloned().collect();
    for call in calls.iter().flatten() {
        accounts.extend(call.account_id.iter().cloned());
    }
    // What the audit log says of those accounts from when the request came in until
    // just after it was answered.
    let start = record.entry.at
        - time::Duration::milliseconds(i64::try_from(record.entry.latency_ms).unwrap_or(0))
        - time::Duration::seconds(1);
    let mut audit = Vec::new();
    for account in &accounts {
        let subject = emails
            .get(account)
            .cloned()
            .unwrap_or_else(|| account.clone());
        let filter = AuditFilter {
            since: Some(start),
            until: Some(record.entry.at + time::Duration::seconds(2)),
            subject: Some(subject),
            ..AuditFilter::default()
        };
        audit.extend(
            state
                .store
                .search_audit(filter, 20)
                .await
                .map_err(ConsoleError::internal)?,
        );
    }
    audit.sort_by_key(|r| (r.event.at, r.id));
    let calls_json = calls.as_ref().map(|calls| {
        calls
            .iter()
            .map(|c| {
                json!({
                    "account_id": c.account_id,
                    "account_email": c.account_id.as_ref().and_then(|id| emails.get(id)),
                    "pool": if c.account_id.is_some() { "antigravity" } else { "gemini-api" },
                    "waited_ms": c.waited_ms,
                    "error_class": c.error_class,
                })
            })
            .collect::<Vec<_>>()
    });
    let waited_ms: Option<u64> = calls.as_ref().map(|c| c.iter().map(|c| c.waited_ms).sum());
    Ok(Json(json!({
        "request": request_json(&record, &names),
        "calls": calls_json,
        "waited_ms": waited_ms,
        "calls_note": calls.is_none().then_some(
            "which accounts were tried and the waits are kept in memory for the newest requests only (since the server started); this one has only its logged facts"
        ),
        "audit": audit.iter().map(audit_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/audit?since=&until=&kind=&account=&q=&limit=`: the audit log, newest
/// first, filtered: `kind` one of the audit kinds, `account` an account's id or
/// e-mail (or any other subject, exactly), `q` text in the subject or what happened.
pub async fn audit(
    State(state): State<SharedState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult {
    let p = params(pairs, &["since", "until", "kind", "account", "q", "limit"])?;
    let limit = limit(p.get("limit"))?;
    let now = OffsetDateTime::now_utc();
    // Audit entries name accounts by e-mail: an id is turned into its e-mail.
    let subject = match p.get("account") {
        None => None,
        Some(value) => Some(
            match state
                .store
                .get_account(value)
                .await
                .map_err(ConsoleError::internal)?
            {
                Some(account) => account.email,
                None => value.clone(),
            },
        ),
    };
    let filter = AuditFilter {
        since: point_in_time("since", p.get("since"), now)?,
        until: point_in_time("until", p.get("until"), now)?,
        kind: one_of::<AuditKind>("kind", p.get("kind"), AUDIT_KINDS)?,
        subject,
        text: p.get("q").cloned(),
    };
    let rows = state
        .store
        .search_audit(filter, limit)
        .await
        .map_err(ConsoleError::internal)?;
    Ok(Json(
        json!({"events": rows.iter().map(audit_json).collect::<Vec<_>>()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[test]
    fn statuses_codes_classes_and_words() {
        assert_eq!(
            status(Some(&s("429"))).unwrap(),
            Some(StatusFilter::Code(429))
        );
        assert_eq!(
            status(Some(&s("5XX"))).unwrap(),
            Some(StatusFilter::Class(5))
        );
        assert_eq!(status(Some(&s("ok"))).unwrap(), Some(StatusFilter::Ok));
        assert_eq!(
            status(Some(&s("error"))).unwrap(),
            Some(StatusFilter::Error)
        );
        for wrong in ["99", "600", "6xx", "xx", "bad"] {
            let e = status(Some(&s(wrong))).unwrap_err();
            assert!(
                e.message.starts_with("status must be"),
                "{wrong}: {}",
                e.message
            );
        }
    }

    #[test]
    fn times_are_rfc3339_or_durations_back() {
        let now = datetime!(2026-12-06 12:00 UTC);
        assert_eq!(
            point_in_time("since", Some(&s("1h")), now).unwrap(),
            Some(datetime!(2026-12-06 11:00 UTC))
        );
        assert_eq!(
            point_in_time("until", Some(&s("2026-12-01T00:00:00Z")), now).unwrap(),
            Some(datetime!(2026-12-01 00:00 UTC))
        );
        let e = point_in_time("since", Some(&s("yesterday")), now).unwrap_err();
        assert!(e.message.starts_with("since must be"), "{}", e.message);
    }

    #[test]
    fn parameters_are_known_once_and_short() {
        let known = &["q", "limit"];
        assert!(params(vec![(s("q"), s("x")), (s("limit"), s(""))], known).is_ok());
        let e = params(vec![(s("colour"), s("x"))], known).unwrap_err();
        assert!(e.message.contains("\"colour\""), "{}", e.message);
        let e = params(vec![(s("q"), s("a")), (s("q"), s("b"))], known).unwrap_err();
        assert!(e.message.contains("more than once"), "{}", e.message);
        assert!(params(vec![(s("q"), "x".repeat(201))], known).is_err());
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some(&s("0"))).is_err());
        assert!(limit(Some(&s("1001"))).is_err());
    }
}

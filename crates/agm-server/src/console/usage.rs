//! `GET /api/usage`: usage figures from the request log ([`agm_store::Store::usage`])
//! as JSON, or as a CSV download with `format=csv`; the console's Usage page draws them.
//!
//! Query: `since` (a duration back from now, `7d`, or an RFC 3339 time; 7 days by
//! default), `until` (RFC 3339; now by default), `bucket` (`minute` over at most a day,
//! `hour` over at most 31 days, `day`, `all`; `day`),
//! `group` (`none`, `account`, `model`, `key`; `none`), `format` (`json`, `csv`).

use std::collections::HashMap;

use agm_store::{UsageBucket, UsageGroup, UsageQuery, UsageRow, rfc3339};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ConsoleError;
use crate::app::SharedState;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    since: Option<String>,
    until: Option<String>,
    bucket: Option<String>,
    group: Option<String>,
    format: Option<String>,
}

fn bad(message: String) -> ConsoleError {
    ConsoleError::new(StatusCode::BAD_REQUEST, message)
}

/// `since`: a duration back from `now` or an RFC 3339 time.
fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, ConsoleError> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(at);
    }
    humantime::parse_duration(text)
        .ok()
        .and_then(|span| time::Duration::try_from(span).ok())
        .and_then(|span| now.checked_sub(span))
        .ok_or_else(|| {
            bad(format!(
                "since {text:?}: give a duration back from now (24h, 7d) or an RFC 3339 time"
            ))
        })
}

fn query_of(params: &UsageParams, now: OffsetDateTime) -> Result<UsageQuery, ConsoleError> {
    let since = parse_since(params.since.as_deref().unwrap_or("7d"), now)?;
    let until = match params.until.as_deref() {
        None => now + time::Duration::milliseconds(1),
        Some(text) => OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| bad(format!("until {text:?}: give an RFC 3339 time")))?,
    };
    if until <= since {
        return Err(bad("until must be after since".to_owned()));
    }
    let bucket = params
        .bucket
        .as_deref()
        .unwrap_or("day")
        .parse::<UsageBucket>()
        .map_err(|e| bad(e.to_string()))?;
    let group = params
        .group
        .as_deref()
        .unwrap_or("none")
        .parse::<UsageGroup>()
        .map_err(|e| bad(e.to_string()))?;
    if bucket == UsageBucket::Minute && until - since > time::Duration::days(1) {
        return Err(bad(
            "usage per minute covers at most 24 hours: narrow since/until or use bucket=hour"
                .to_owned(),
        ));
    }
    if bucket == UsageBucket::Hour && until - since > time::Duration::days(31) {
        return Err(bad(
            "hourly usage covers at most 31 days: narrow since/until or use bucket=day".to_owned(),
        ));
    }
    Ok(UsageQuery {
        since,
        until,
        bucket,
        group,
    })
}

/// agm's own time per request, on average, in milliseconds (3 decimals).
fn overhead_ms(row: &UsageRow) -> Option<f64> {
    row.overhead_avg_us.map(|us| us as f64 / 1000.0)
}

/// `GET /api/usage`.
pub async fn usage(
    State(state): State<SharedState>,
    Query(params): Query<UsageParams>,
) -> Result<Response, ConsoleError> {
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(bad(format!("format {other:?}: json or csv"))),
    };
    let query = query_of(&params, OffsetDateTime::now_utc())?;
    let rows = state
        .store
        .usage(&query)
        .await
        .map_err(ConsoleError::internal)?;
    // Keys are shown by name as well (a key's id is not telling).
    let names: HashMap<String, String> = if query.group == UsageGroup::Key {
        super::logs::key_names(&state).await?
    } else {
        HashMap::new()
    };
    let name = |row: &UsageRow| row.group.as_ref().and_then(|g| names.get(g)).cloned();
    if csv {
        let mut out = String::from(
            "start,group,name,requests,successes,errors,input_tokens,output_tokens,p50_ms,p95_ms,p99_ms,overhead_avg_ms\n",
        );
        for row in &rows {
            let cells = [
                rfc3339(row.start),
                row.group.clone().unwrap_or_default(),
                name(row).unwrap_or_default(),
                row.requests.to_string(),
                row.successes.to_string(),
                row.errors().to_string(),
                row.input_tokens.to_string(),
                row.output_tokens.to_string(),
                row.p50_ms.to_string(),
                row.p95_ms.to_string(),
                row.p99_ms.to_string(),
                overhead_ms(row)
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
            ];
            let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        let mut response = (StatusCode::OK, out).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"agm-usage.csv\""),
        );
        return Ok(response);
    }
    let listed: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "start": rfc3339(row.start),
                "group": row.group,
                "name": name(row),
                "requests": row.requests,
                "successes": row.successes,
                "errors": row.errors(),
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "p50_ms": row.p50_ms,
                "p95_ms": row.p95_ms,
                "p99_ms": row.p99_ms,
                "overhead_avg_ms": overhead_ms(row),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "since": rfc3339(query.since),
        "until": rfc3339(query.until),
        "bucket": query.bucket,
        "group": query.group,
        "rows": listed,
    }))
    .into_response())
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break; a leading
/// `=`, `+`, `-` or `@` (a formula to a spreadsheet) is prefixed with `'`.
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("-1,2"), "\"'-1,2\"");
    }

    #[test]
    fn queries_have_defaults_and_say_what_is_wrong() {
        let now = datetime!(2026-12-06 12:00 UTC);
        let q = query_of(&UsageParams::default(), now).unwrap();
        assert_eq!(q.since, datetime!(2026-11-29 12:00 UTC));
        assert_eq!((q.bucket, q.group), (UsageBucket::Day, UsageGroup::None));
        let params = |since: &str, bucket: &str, group: &str| UsageParams {
            since: Some(since.into()),
            bucket: Some(bucket.into()),
            group: Some(group.into()),
            ..UsageParams::default()
        };
        let q = query_of(&params("2026-12-06T00:00:00Z", "hour", "key"), now).unwrap();
        assert_eq!(q.since, datetime!(2026-12-06 00:00 UTC));
        assert_eq!((q.bucket, q.group), (UsageBucket::Hour, UsageGroup::Key));
        let message = |p| query_of(&p, now).err().unwrap().message;
        assert!(message(params("lately", "day", "none")).contains("24h"));
        assert!(message(params("7d", "week", "none")).contains("hour"));
        assert!(message(params("7d", "day", "user")).contains("account"));
        assert!(message(params("60d", "hour", "none")).contains("31 days"));
    }
}

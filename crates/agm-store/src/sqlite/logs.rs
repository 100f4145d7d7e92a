//! The audit log and the request log.

use rusqlite::{Connection, Row, params};
use time::OffsetDateTime;

use super::{limit_to_i64, to_i64};
use crate::audit::{AuditEvent, AuditKind, AuditRecord};
use crate::error::StoreError;
use crate::request_log::{ApiKind, RequestLogEntry, RequestLogRecord};
use crate::timestamp::{from_millis, to_millis};

fn since_millis(since: Option<OffsetDateTime>) -> i64 {
    since.map_or(i64::MIN, to_millis)
}

pub(super) fn append_audit(conn: &Connection, event: &AuditEvent) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit_log (at, kind, subject, detail) VALUES (?1, ?2, ?3, ?4)",
        params![
            to_millis(event.at),
            event.kind.as_str(),
            event.subject,
            event.detail
        ],
    )?;
    Ok(())
}

pub(super) fn list_audit(
    conn: &Connection,
    since: Option<OffsetDateTime>,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, kind, subject, detail FROM audit_log WHERE at >= ?1 \
         ORDER BY at DESC, id DESC LIMIT ?2",
    )?;
    let raw = stmt
        .query_map(params![since_millis(since), limit_to_i64(limit)], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|(id, at, kind, subject, detail)| {
            let kind = kind
                .parse::<AuditKind>()
                .map_err(|_| StoreError::InvalidValue {
                    column: "audit_log.kind",
                    value: kind,
                })?;
            Ok(AuditRecord {
                id,
                event: AuditEvent {
                    at: from_millis(at, "audit_log.at")?,
                    kind,
                    subject,
                    detail,
                },
            })
        })
        .collect()
}

pub(super) fn append_request(conn: &Connection, entry: &RequestLogEntry) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO request_log (at, api, client_model, upstream_model, account_id, status, \
         latency_ms, input_tokens, output_tokens, error_class, route, attempts, overhead_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    stmt.execute(params![
        to_millis(entry.at),
        entry.api.as_str(),
        entry.client_model,
        entry.upstream_model,
        entry.account_id,
        entry.status,
        to_i64(entry.latency_ms),
        to_i64(entry.input_tokens),
        to_i64(entry.output_tokens),
        entry.error_class,
        entry.route,
        entry.attempts,
        entry.overhead_us.map(to_i64),
    ])?;
    Ok(())
}

struct RawRequest {
    id: i64,
    at: i64,
    api: String,
    client_model: String,
    upstream_model: String,
    account_id: Option<String>,
    status: i64,
    latency_ms: i64,
    input_tokens: i64,
    output_tokens: i64,
    error_class: Option<String>,
    route: String,
    attempts: i64,
    overhead_us: Option<i64>,
}

impl RawRequest {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<RawRequest> {
        Ok(RawRequest {
            id: row.get(0)?,
            at: row.get(1)?,
            api: row.get(2)?,
            client_model: row.get(3)?,
            upstream_model: row.get(4)?,
            account_id: row.get(5)?,
            status: row.get(6)?,
            latency_ms: row.get(7)?,
            input_tokens: row.get(8)?,
            output_tokens: row.get(9)?,
            error_class: row.get(10)?,
            route: row.get(11)?,
            attempts: row.get(12)?,
            overhead_us: row.get(13)?,
        })
    }

    fn check(self) -> Result<RequestLogRecord, StoreError> {
        let api = self
            .api
            .parse::<ApiKind>()
            .map_err(|_| StoreError::InvalidValue {
                column: "request_log.api",
                value: self.api.clone(),
            })?;
        let status = u16::try_from(self.status).map_err(|_| StoreError::InvalidValue {
            column: "request_log.status",
            value: self.status.to_string(),
        })?;
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(RequestLogRecord {
            id: self.id,
            entry: RequestLogEntry {
                at: from_millis(self.at, "request_log.at")?,
                api,
                client_model: self.client_model,
                upstream_model: self.upstream_model,
                account_id: self.account_id,
                status,
                latency_ms: count(self.latency_ms),
                input_tokens: count(self.input_tokens),
                output_tokens: count(self.output_tokens),
                error_class: self.error_class,
                route: self.route,
                attempts: u32::try_from(self.attempts).unwrap_or(0),
                overhead_us: self.overhead_us.map(count),
            },
        })
    }
}

pub(super) fn list_requests(
    conn: &Connection,
    since: Option<OffsetDateTime>,
    limit: usize,
) -> Result<Vec<RequestLogRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, api, client_model, upstream_model, account_id, status, latency_ms, \
         input_tokens, output_tokens, error_class, route, attempts, overhead_us \
         FROM request_log WHERE at >= ?1 \
         ORDER BY at DESC, id DESC LIMIT ?2",
    )?;
    let raw = stmt
        .query_map(
            params![since_millis(since), limit_to_i64(limit)],
            RawRequest::from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().map(RawRequest::check).collect()
}

pub(super) fn prune_requests(
    conn: &Connection,
    older_than: OffsetDateTime,
) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM request_log WHERE at < ?1",
        [to_millis(older_than)],
    )?)
}

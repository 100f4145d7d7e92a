//! The audit log and the request log.

use rusqlite::{Connection, Row, params};
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditRecord};
use crate::error::StoreError;
use crate::raw::{RawAudit, RawRequest, limit_to_i64, since_millis, to_i64};
use crate::request_log::{RequestLogEntry, RequestLogRecord};
use crate::search::{AuditFilter, Clause, Dialect, Param, RequestLogFilter};
use crate::timestamp::to_millis;
use crate::usage::{UsageQuery, UsageSample};

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
        .query_map(params![since_millis(since), limit_to_i64(limit)], raw_audit)?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().map(RawAudit::check).collect()
}

pub(super) fn raw_audit(row: &Row<'_>) -> rusqlite::Result<RawAudit> {
    Ok(RawAudit {
        id: row.get(0)?,
        at: row.get(1)?,
        kind: row.get(2)?,
        subject: row.get(3)?,
        detail: row.get(4)?,
    })
}

pub(super) fn append_request(conn: &Connection, entry: &RequestLogEntry) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO request_log (at, api, client_model, upstream_model, account_id, status, \
         latency_ms, input_tokens, output_tokens, error_class, route, attempts, overhead_us, \
         context_scaled, key_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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
        entry.context_scaled,
        entry.key_id,
    ])?;
    Ok(())
}

pub(super) fn raw_request(row: &Row<'_>) -> rusqlite::Result<RawRequest> {
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
        context_scaled: row.get(14)?,
        key_id: row.get(15)?,
    })
}

pub(super) const REQUEST_COLUMNS: &str = "id, at, api, client_model, upstream_model, account_id, \
     status, latency_ms, input_tokens, output_tokens, error_class, route, attempts, overhead_us, \
     context_scaled, key_id";

pub(super) fn list_requests(
    conn: &Connection,
    since: Option<OffsetDateTime>,
    limit: usize,
) -> Result<Vec<RequestLogRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM request_log WHERE at >= ?1 ORDER BY at DESC, id DESC LIMIT ?2"
    ))?;
    let raw = stmt
        .query_map(
            params![since_millis(since), limit_to_i64(limit)],
            raw_request,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().map(RawRequest::check).collect()
}

pub(super) fn usage_samples(
    conn: &Connection,
    query: &UsageQuery,
) -> Result<Vec<UsageSample>, StoreError> {
    let mut stmt = conn.prepare_cached(&query.sql("?1", "?2"))?;
    let rows = stmt
        .query_map(
            params![to_millis(query.since), to_millis(query.until)],
            |row| {
                Ok(UsageSample {
                    start: row.get(0)?,
                    group: row.get(1)?,
                    latency_ms: row.get(2)?,
                    requests: row.get(3)?,
                    successes: row.get(4)?,
                    input_tokens: row.get(5)?,
                    output_tokens: row.get(6)?,
                    overhead_us: row.get(7)?,
                    overhead_count: row.get(8)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
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

/// The clause's parameters as SQLite values.
fn sqlite_params(params: Vec<Param>) -> Vec<rusqlite::types::Value> {
    params
        .into_iter()
        .map(|p| match p {
            Param::Int(i) => rusqlite::types::Value::Integer(i),
            Param::Text(t) => rusqlite::types::Value::Text(t),
        })
        .collect()
}

/// The newest `limit` rows of `table` the clause keeps, newest first.
fn search<R>(
    conn: &Connection,
    columns: &str,
    table: &str,
    clause: Clause,
    limit: usize,
    read: fn(&Row<'_>) -> rusqlite::Result<R>,
) -> Result<Vec<R>, StoreError> {
    let mut params = sqlite_params(clause.params);
    params.push(rusqlite::types::Value::Integer(limit_to_i64(limit)));
    let mut stmt = conn.prepare(&format!(
        "SELECT {columns} FROM {table} {} ORDER BY at DESC, id DESC LIMIT ?{}",
        clause.sql,
        params.len()
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), read)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn search_requests(
    conn: &Connection,
    filter: &RequestLogFilter,
    limit: usize,
) -> Result<Vec<RequestLogRecord>, StoreError> {
    let clause = filter.clause(Dialect::Sqlite);
    search(
        conn,
        REQUEST_COLUMNS,
        "request_log",
        clause,
        limit,
        raw_request,
    )?
    .into_iter()
    .map(RawRequest::check)
    .collect()
}

pub(super) fn get_request(
    conn: &Connection,
    id: i64,
) -> Result<Option<RequestLogRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM request_log WHERE id = ?1"
    ))?;
    let raw = stmt
        .query_map([id], raw_request)?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().next().map(RawRequest::check).transpose()
}

pub(super) fn search_audit(
    conn: &Connection,
    filter: &AuditFilter,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let clause = filter.clause(Dialect::Sqlite);
    search(
        conn,
        "id, at, kind, subject, detail",
        "audit_log",
        clause,
        limit,
        raw_audit,
    )?
    .into_iter()
    .map(RawAudit::check)
    .collect()
}

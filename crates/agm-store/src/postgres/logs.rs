//! The audit log and the request log.

use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::audit::{AuditEvent, AuditRecord};
use crate::error::StoreError;
use crate::raw::{RawAudit, RawRequest, limit_to_i64, since_millis};
use crate::request_log::{RequestLogEntry, RequestLogRecord};
use crate::search::{AuditFilter, Clause, Dialect, Param, RequestLogFilter};
use crate::timestamp::to_millis;
use crate::usage::{UsageQuery, UsageSample};

pub(super) const AUDIT_COLUMNS: &str = "id, at, kind, subject, detail";

pub(super) fn raw_audit(row: &Row) -> Result<RawAudit, tokio_postgres::Error> {
    Ok(RawAudit {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        kind: row.try_get(2)?,
        subject: row.try_get(3)?,
        detail: row.try_get(4)?,
    })
}

pub(super) const REQUEST_COLUMNS: &str = "id, at, api, client_model, upstream_model, account_id, \
     status, latency_ms, input_tokens, output_tokens, error_class, route, attempts, overhead_us, \
     context_scaled, key_id";

pub(super) fn raw_request(row: &Row) -> Result<RawRequest, tokio_postgres::Error> {
    Ok(RawRequest {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        api: row.try_get(2)?,
        client_model: row.try_get(3)?,
        upstream_model: row.try_get(4)?,
        account_id: row.try_get(5)?,
        status: row.try_get(6)?,
        latency_ms: row.try_get(7)?,
        input_tokens: row.try_get(8)?,
        output_tokens: row.try_get(9)?,
        error_class: row.try_get(10)?,
        route: row.try_get(11)?,
        attempts: row.try_get(12)?,
        overhead_us: row.try_get(13)?,
        context_scaled: row.try_get(14)?,
        key_id: row.try_get(15)?,
    })
}

/// Request-log rows as one array per column, for `INSERT ... SELECT * FROM UNNEST(...)`:
/// a batch in one statement.
pub(super) struct RequestColumns {
    id: Vec<i64>,
    at: Vec<i64>,
    api: Vec<String>,
    client_model: Vec<String>,
    upstream_model: Vec<String>,
    account_id: Vec<Option<String>>,
    status: Vec<i64>,
    latency_ms: Vec<i64>,
    input_tokens: Vec<i64>,
    output_tokens: Vec<i64>,
    error_class: Vec<Option<String>>,
    route: Vec<String>,
    attempts: Vec<i64>,
    overhead_us: Vec<Option<i64>>,
    context_scaled: Vec<Option<String>>,
    key_id: Vec<Option<String>>,
}

impl RequestColumns {
    pub(super) fn new(rows: Vec<RawRequest>) -> RequestColumns {
        let mut c = RequestColumns {
            id: Vec::with_capacity(rows.len()),
            at: Vec::with_capacity(rows.len()),
            api: Vec::with_capacity(rows.len()),
            client_model: Vec::with_capacity(rows.len()),
            upstream_model: Vec::with_capacity(rows.len()),
            account_id: Vec::with_capacity(rows.len()),
            status: Vec::with_capacity(rows.len()),
            latency_ms: Vec::with_capacity(rows.len()),
            input_tokens: Vec::with_capacity(rows.len()),
            output_tokens: Vec::with_capacity(rows.len()),
            error_class: Vec::with_capacity(rows.len()),
            route: Vec::with_capacity(rows.len()),
            attempts: Vec::with_capacity(rows.len()),
            overhead_us: Vec::with_capacity(rows.len()),
            context_scaled: Vec::with_capacity(rows.len()),
            key_id: Vec::with_capacity(rows.len()),
        };
        for r in rows {
            c.id.push(r.id);
            c.at.push(r.at);
            c.api.push(r.api);
            c.client_model.push(r.client_model);
            c.upstream_model.push(r.upstream_model);
            c.account_id.push(r.account_id);
            c.status.push(r.status);
            c.latency_ms.push(r.latency_ms);
            c.input_tokens.push(r.input_tokens);
            c.output_tokens.push(r.output_tokens);
            c.error_class.push(r.error_class);
            c.route.push(r.route);
            c.attempts.push(r.attempts);
            c.overhead_us.push(r.overhead_us);
            c.context_scaled.push(r.context_scaled);
            c.key_id.push(r.key_id);
        }
        c
    }

    /// Every column but the id, in `REQUEST_COLUMNS` order.
    fn without_id(&self) -> [&(dyn ToSql + Sync); 15] {
        [
            &self.at,
            &self.api,
            &self.client_model,
            &self.upstream_model,
            &self.account_id,
            &self.status,
            &self.latency_ms,
            &self.input_tokens,
            &self.output_tokens,
            &self.error_class,
            &self.route,
            &self.attempts,
            &self.overhead_us,
            &self.context_scaled,
            &self.key_id,
        ]
    }

    /// Every column, the id first.
    pub(super) fn with_id(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.id];
        params.extend(self.without_id());
        params
    }
}

/// The SQL types of the columns after the id, in `REQUEST_COLUMNS` order.
const REQUEST_TYPES: [&str; 15] = [
    "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT",
    "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT",
];

/// `$first::BIGINT[], $first+1::TEXT[], ...`: the arrays of the columns after the id.
pub(super) fn request_arrays(first: usize) -> String {
    REQUEST_TYPES
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PgStore {
    pub(crate) async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit_log (at, kind, subject, detail) VALUES ($1, $2, $3, $4)",
            &[
                &to_millis(event.at),
                &event.kind.as_str(),
                &event.subject,
                &event.detail,
            ],
        )
        .await
        .map(drop)
    }

    pub(crate) async fn list_audit(
        &self,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE at >= $1 \
                 ORDER BY at DESC, id DESC LIMIT $2"
            ))
            .await?;
        conn.query(&stmt, &[&since_millis(since), &limit_to_i64(limit)])
            .await?
            .iter()
            .map(|row| raw_audit(row)?.check())
            .collect()
    }

    pub(crate) async fn append_request_log(
        &self,
        entry: RequestLogEntry,
    ) -> Result<(), StoreError> {
        self.append_request_logs(vec![entry]).await
    }

    /// A batch in one statement (one commit).
    pub(crate) async fn append_request_logs(
        &self,
        entries: Vec<RequestLogEntry>,
    ) -> Result<(), StoreError> {
        let columns = RequestColumns::new(entries.iter().map(RawRequest::from_entry).collect());
        self.execute(
            &format!(
                "INSERT INTO request_log (at, api, client_model, upstream_model, account_id, \
                 status, latency_ms, input_tokens, output_tokens, error_class, route, attempts, \
                 overhead_us, context_scaled, key_id) SELECT * FROM UNNEST({})",
                request_arrays(1)
            ),
            &columns.without_id(),
        )
        .await
        .map(drop)
    }

    pub(crate) async fn list_request_log(
        &self,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<RequestLogRecord>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM request_log WHERE at >= $1 \
                 ORDER BY at DESC, id DESC LIMIT $2"
            ))
            .await?;
        conn.query(&stmt, &[&since_millis(since), &limit_to_i64(limit)])
            .await?
            .iter()
            .map(|row| raw_request(row)?.check())
            .collect()
    }

    /// The query's requests, summed per bucket, group and latency.
    pub(crate) async fn usage_samples(
        &self,
        query: UsageQuery,
    ) -> Result<Vec<UsageSample>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(&query.sql("$1", "$2")).await?;
        conn.query(&stmt, &[&to_millis(query.since), &to_millis(query.until)])
            .await?
            .iter()
            .map(|row| {
                Ok(UsageSample {
                    start: row.try_get(0)?,
                    group: row.try_get(1)?,
                    latency_ms: row.try_get(2)?,
                    requests: row.try_get(3)?,
                    successes: row.try_get(4)?,
                    input_tokens: row.try_get(5)?,
                    output_tokens: row.try_get(6)?,
                    overhead_us: row.try_get(7)?,
                    overhead_count: row.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(StoreError::from)
    }

    /// Rows of `SELECT {columns} FROM {table} {clause} ORDER BY at DESC, id DESC LIMIT n`.
    async fn search(
        &self,
        columns: &str,
        table: &str,
        clause: Clause,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = clause
            .params
            .into_iter()
            .map(|p| -> Box<dyn ToSql + Sync + Send> {
                match p {
                    Param::Int(i) => Box::new(i),
                    Param::Text(t) => Box::new(t),
                }
            })
            .collect();
        params.push(Box::new(limit_to_i64(limit)));
        let sql = format!(
            "SELECT {columns} FROM {table} {} ORDER BY at DESC, id DESC LIMIT ${}",
            clause.sql,
            params.len()
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(&sql).await?;
        Ok(conn.query(&stmt, &refs).await?)
    }

    pub(crate) async fn search_request_log(
        &self,
        filter: RequestLogFilter,
        limit: usize,
    ) -> Result<Vec<RequestLogRecord>, StoreError> {
        let clause = filter.clause(Dialect::Postgres);
        self.search(REQUEST_COLUMNS, "request_log", clause, limit)
            .await?
            .iter()
            .map(|row| raw_request(row)?.check())
            .collect()
    }

    pub(crate) async fn get_request_log(
        &self,
        id: i64,
    ) -> Result<Option<RequestLogRecord>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM request_log WHERE id = $1"
            ))
            .await?;
        conn.query_opt(&stmt, &[&id])
            .await?
            .map(|row| raw_request(&row)?.check())
            .transpose()
    }

    pub(crate) async fn search_audit(
        &self,
        filter: AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let clause = filter.clause(Dialect::Postgres);
        self.search(AUDIT_COLUMNS, "audit_log", clause, limit)
            .await?
            .iter()
            .map(|row| raw_audit(row)?.check())
            .collect()
    }

    pub(crate) async fn prune_request_log(
        &self,
        older_than: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "DELETE FROM request_log WHERE at < $1",
                &[&to_millis(older_than)],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

//! Filters over the request log and the audit log (the console's Logs and Audit pages,
//! `GET /api/logs` and `GET /api/audit`), turned into one `WHERE` clause with bound
//! parameters for either backend: a user's text never becomes SQL.

use time::OffsetDateTime;

use crate::audit::AuditKind;
use crate::request_log::ApiKind;
use crate::timestamp::to_millis;

/// Which statuses a request-log search keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Exactly this HTTP status.
    Code(u16),
    /// A class: `4` for every 4xx.
    Class(u16),
    /// Every status below 400.
    Ok,
    /// Every status of 400 and above.
    Error,
}

/// A request-log search; every field left `None` keeps every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLogFilter {
    /// At or after.
    pub since: Option<OffsetDateTime>,
    /// Before.
    pub until: Option<OffsetDateTime>,
    pub api: Option<ApiKind>,
    /// The model the client asked for or the one sent upstream, exactly.
    pub model: Option<String>,
    /// The account that served the request, by id.
    pub account_id: Option<String>,
    pub status: Option<StatusFilter>,
    /// Contained (ignoring ASCII case) in the client or upstream model, the route or
    /// the error class.
    pub text: Option<String>,
}

/// An audit-log search; every field left `None` keeps every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// At or after.
    pub since: Option<OffsetDateTime>,
    /// Before.
    pub until: Option<OffsetDateTime>,
    pub kind: Option<AuditKind>,
    /// The subject, exactly (ignoring ASCII case): an account's e-mail, a key id.
    pub subject: Option<String>,
    /// Contained (ignoring ASCII case) in the subject or the detail.
    pub text: Option<String>,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

/// The SQL dialect a clause is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A `WHERE` clause (always starting `WHERE`) and its parameters, numbered from 1.
#[derive(Debug, Default)]
pub(crate) struct Clause {
    pub sql: String,
    pub params: Vec<Param>,
}

struct Builder {
    dialect: Dialect,
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Builder {
    fn new(dialect: Dialect) -> Builder {
        Builder {
            dialect,
            conditions: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Binds `param`; its placeholder.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.params.len()),
            Dialect::Postgres => format!("${}", self.params.len()),
        }
    }

    fn time(&mut self, since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) {
        if let Some(since) = since {
            let p = self.bind(Param::Int(to_millis(since)));
            self.conditions.push(format!("at >= {p}"));
        }
        if let Some(until) = until {
            let p = self.bind(Param::Int(to_millis(until)));
            self.conditions.push(format!("at < {p}"));
        }
    }

    fn equal(&mut self, column: &str, value: Param) {
        let p = self.bind(value);
        self.conditions.push(format!("{column} = {p}"));
    }

    /// `needle` (lowercased here) is in any of `columns` (lowercased by the database).
    fn contains_any(&mut self, columns: &[&str], needle: &str) {
        let p = self.bind(Param::Text(needle.to_lowercase()));
        let function = match self.dialect {
            Dialect::Sqlite => "instr",
            Dialect::Postgres => "strpos",
        };
        let any = columns
            .iter()
            .map(|c| format!("{function}(lower(COALESCE({c}, '')), {p}) > 0"))
            .collect::<Vec<_>>()
            .join(" OR ");
        self.conditions.push(format!("({any})"));
    }

    fn finish(self) -> Clause {
        let sql = if self.conditions.is_empty() {
            "WHERE 1 = 1".to_owned()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        };
        Clause {
            sql,
            params: self.params,
        }
    }
}

impl RequestLogFilter {
    pub(crate) fn clause(&self, dialect: Dialect) -> Clause {
        let mut b = Builder::new(dialect);
        b.time(self.since, self.until);
        if let Some(api) = self.api {
            b.equal("api", Param::Text(api.as_str().to_owned()));
        }
        if let Some(model) = &self.model {
            let p = b.bind(Param::Text(model.clone()));
            b.conditions
                .push(format!("(client_model = {p} OR upstream_model = {p})"));
        }
        if let Some(account) = &self.account_id {
            b.equal("account_id", Param::Text(account.clone()));
        }
        match self.status {
            None => {}
            Some(StatusFilter::Code(code)) => b.equal("status", Param::Int(i64::from(code))),
            Some(StatusFilter::Class(class)) => {
                let low = b.bind(Param::Int(i64::from(class) * 100));
                let high = b.bind(Param::Int(i64::from(class) * 100 + 100));
                b.conditions
                    .push(format!("status >= {low} AND status < {high}"));
            }
            Some(StatusFilter::Ok) => b.conditions.push("status < 400".to_owned()),
            Some(StatusFilter::Error) => b.conditions.push("status >= 400".to_owned()),
        }
        if let Some(text) = &self.text {
            b.contains_any(
                &["client_model", "upstream_model", "route", "error_class"],
                text,
            );
        }
        b.finish()
    }
}

impl AuditFilter {
    pub(crate) fn clause(&self, dialect: Dialect) -> Clause {
        let mut b = Builder::new(dialect);
        b.time(self.since, self.until);
        if let Some(kind) = self.kind {
            b.equal("kind", Param::Text(kind.as_str().to_owned()));
        }
        if let Some(subject) = &self.subject {
            let p = b.bind(Param::Text(subject.to_lowercase()));
            b.conditions.push(format!("lower(subject) = {p}"));
        }
        if let Some(text) = &self.text {
            b.contains_any(&["subject", "detail"], text);
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_empty_filter_keeps_everything() {
        let c = RequestLogFilter::default().clause(Dialect::Sqlite);
        assert_eq!(c.sql, "WHERE 1 = 1");
        assert!(c.params.is_empty());
    }

    #[test]
    fn every_value_is_bound_never_written_into_the_sql() {
        let filter = RequestLogFilter {
            since: Some(datetime!(2026-01-01 00:00 UTC)),
            until: None,
            api: Some(ApiKind::Gemini),
            model: Some("x' OR 1=1 --".into()),
            account_id: None,
            status: Some(StatusFilter::Class(4)),
            text: Some("Rate".into()),
        };
        let c = filter.clause(Dialect::Postgres);
        assert!(!c.sql.contains("OR 1=1"), "{}", c.sql);
        assert!(
            c.sql
                .contains("strpos(lower(COALESCE(error_class, '')), $6) > 0")
        );
        assert_eq!(c.params.len(), 6);
        assert_eq!(c.params[5], Param::Text("rate".into()));
        let c = filter.clause(Dialect::Sqlite);
        assert!(c.sql.contains("(client_model = ?3 OR upstream_model = ?3)"));
        assert!(c.sql.contains("status >= ?4 AND status < ?5"));
    }

    #[test]
    fn audit_subjects_ignore_case() {
        let c = AuditFilter {
            subject: Some("Alice@Example.com".into()),
            kind: Some(AuditKind::Account),
            ..AuditFilter::default()
        }
        .clause(Dialect::Sqlite);
        assert_eq!(c.sql, "WHERE kind = ?1 AND lower(subject) = ?2");
        assert_eq!(c.params[1], Param::Text("alice@example.com".into()));
    }
}

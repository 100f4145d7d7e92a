//! Usage figures from the request log ([`crate::Store::usage`]): requests, successes,
//! tokens in and out and latency percentiles, per time bucket (UTC hour or day, or
//! the whole range) and per group (account, model or client key). Both backends hand
//! over the same samples and this one aggregator sums them, so the figures are the
//! same on SQLite and PostgreSQL.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::names::named_enum;
use crate::timestamp::{from_millis, to_millis};

named_enum! {
    /// How usage is cut in time.
    pub enum UsageBucket ("usage bucket") {
        Hour = "hour",
        Day = "day",
        /// The whole range as one bucket.
        All = "all",
    }
}

named_enum! {
    /// What usage is grouped by.
    pub enum UsageGroup ("usage group") {
        None = "none",
        Account = "account",
        /// The model that served (the client's name when none did).
        Model = "model",
        /// The client key (its id).
        Key = "key",
    }
}

/// What [`crate::Store::usage`] sums: requests logged at or after `since` and before
/// `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub bucket: UsageBucket,
    pub group: UsageGroup,
}

/// One bucket of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Where the bucket starts (UTC); with [`UsageBucket::All`], the query's `since`.
    pub start: OffsetDateTime,
    /// The account id, model or key id; `None` for [`UsageGroup::None`], and for
    /// requests without one (no account served, no key sent).
    pub group: Option<String>,
    pub requests: u64,
    /// Answered with a status below 400.
    pub successes: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Latency percentiles (nearest rank), in milliseconds.
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
}

impl UsageRow {
    pub fn errors(&self) -> u64 {
        self.requests - self.successes
    }
}

/// One logged request, as much of it as usage needs.
#[derive(Debug, Clone)]
pub(crate) struct UsageSample {
    pub at: i64,
    pub group: Option<String>,
    pub status: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub latency_ms: i64,
}

impl UsageGroup {
    /// The SQL expression of the group (a closed set: never user text).
    pub(crate) fn column(self) -> &'static str {
        match self {
            UsageGroup::None => "NULL",
            UsageGroup::Account => "account_id",
            UsageGroup::Model => {
                "CASE WHEN upstream_model <> '' THEN upstream_model \
                 WHEN client_model <> '' THEN client_model END"
            }
            UsageGroup::Key => "key_id",
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Default)]
struct Sums {
    requests: u64,
    successes: u64,
    input_tokens: u64,
    output_tokens: u64,
    latencies: Vec<u64>,
}

/// Sums `samples` into rows, by bucket start then group.
pub(crate) fn aggregate(query: &UsageQuery, samples: Vec<UsageSample>) -> Vec<UsageRow> {
    let since = to_millis(query.since);
    let mut sums: BTreeMap<(i64, Option<String>), Sums> = BTreeMap::new();
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    for s in samples {
        let start = match query.bucket {
            UsageBucket::Hour => s.at - s.at.rem_euclid(HOUR_MS),
            UsageBucket::Day => s.at - s.at.rem_euclid(DAY_MS),
            UsageBucket::All => since,
        };
        let entry = sums.entry((start, s.group)).or_default();
        entry.requests += 1;
        if s.status < 400 {
            entry.successes += 1;
        }
        entry.input_tokens = entry.input_tokens.saturating_add(count(s.input_tokens));
        entry.output_tokens = entry.output_tokens.saturating_add(count(s.output_tokens));
        entry.latencies.push(count(s.latency_ms));
    }
    sums.into_iter()
        .map(|((start, group), mut s)| {
            s.latencies.sort_unstable();
            let rank = |p: u64| percentile(&s.latencies, p);
            UsageRow {
                start: from_millis(start, "request_log.at").unwrap_or(query.since),
                group,
                requests: s.requests,
                successes: s.successes,
                input_tokens: s.input_tokens,
                output_tokens: s.output_tokens,
                p50_ms: rank(50),
                p95_ms: rank(95),
                p99_ms: rank(99),
            }
        })
        .collect()
}

/// The nearest-rank `p`th percentile of sorted values (0 for none).
fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).max(1);
    sorted[usize::try_from(rank - 1).unwrap_or(0).min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 95), 95);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(percentile(&[1, 2, 3], 50), 2);
    }
}

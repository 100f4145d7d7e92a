//! Usage figures from the request log ([`crate::Store::usage`]): requests, successes,
//! tokens in and out and latency percentiles, per time bucket (UTC hour or day, or
//! the whole range) and per group (account, model or client key). Both backends run
//! the same statement ([`UsageQuery::sql`]: sums per bucket, group and latency) and
//! this one aggregator adds them up and takes the percentiles, so the figures are the
//! same on SQLite and PostgreSQL.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::names::named_enum;
use crate::timestamp::{from_millis, to_millis};

named_enum! {
    /// How usage is cut in time.
    pub enum UsageBucket ("usage bucket") {
        /// For the console's last hour.
        Minute = "minute",
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
    /// agm's own share of the latency (Google's time excluded), on average over the
    /// requests that made an upstream call, in microseconds; `None` when none did.
    pub overhead_avg_us: Option<u64>,
}

impl UsageRow {
    pub fn errors(&self) -> u64 {
        self.requests - self.successes
    }
}

/// The requests of one bucket, group and latency, as the database sums them.
#[derive(Debug, Clone)]
pub(crate) struct UsageSample {
    /// The bucket's start (unix ms); 0 for [`UsageBucket::All`].
    pub start: i64,
    pub group: Option<String>,
    pub latency_ms: i64,
    pub requests: i64,
    pub successes: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// The sum of `overhead_us` over the requests that have one, and how many do.
    pub overhead_us: Option<i64>,
    pub overhead_count: i64,
}

impl UsageQuery {
    /// The one statement both backends run, with their placeholders for `since` and
    /// `until` (unix ms): the requests of `[since, until)` summed per bucket, group and
    /// latency, so the rows sent are as many as distinct latencies, not requests, and
    /// the percentiles stay exact. Everything in it comes from closed sets, never from
    /// user text.
    pub(crate) fn sql(&self, since: &str, until: &str) -> String {
        let start = match self.bucket {
            UsageBucket::Minute => "at - (at % 60000)",
            UsageBucket::Hour => "at - (at % 3600000)",
            UsageBucket::Day => "at - (at % 86400000)",
            UsageBucket::All => "CAST(0 AS BIGINT)",
        };
        format!(
            "SELECT {start}, {}, latency_ms, COUNT(*), \
             CAST(SUM(CASE WHEN status < 400 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
             CAST(SUM(overhead_us) AS BIGINT), COUNT(overhead_us) \
             FROM request_log WHERE at >= {since} AND at < {until} GROUP BY 1, 2, 3",
            self.group.column()
        )
    }
}

impl UsageGroup {
    /// The SQL expression of the group.
    fn column(self) -> &'static str {
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

#[derive(Default)]
struct Sums {
    requests: u64,
    successes: u64,
    input_tokens: u64,
    output_tokens: u64,
    /// Latency (ms) → requests.
    latencies: BTreeMap<u64, u64>,
    overhead_us: u64,
    overhead_count: u64,
}

/// Sums `samples` into rows, by bucket start then group.
pub(crate) fn aggregate(query: &UsageQuery, samples: Vec<UsageSample>) -> Vec<UsageRow> {
    let since = to_millis(query.since);
    let mut sums: BTreeMap<(i64, Option<String>), Sums> = BTreeMap::new();
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    for s in samples {
        let start = match query.bucket {
            UsageBucket::All => since,
            _ => s.start,
        };
        let entry = sums.entry((start, s.group)).or_default();
        entry.requests += count(s.requests);
        entry.successes += count(s.successes);
        entry.input_tokens = entry.input_tokens.saturating_add(count(s.input_tokens));
        entry.output_tokens = entry.output_tokens.saturating_add(count(s.output_tokens));
        *entry.latencies.entry(count(s.latency_ms)).or_default() += count(s.requests);
        entry.overhead_us = entry
            .overhead_us
            .saturating_add(count(s.overhead_us.unwrap_or(0)));
        entry.overhead_count += count(s.overhead_count);
    }
    sums.into_iter()
        .map(|((start, group), s)| {
            let rank = |p: u64| percentile(&s.latencies, s.requests, p);
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
                overhead_avg_us: (s.overhead_count > 0).then(|| s.overhead_us / s.overhead_count),
            }
        })
        .collect()
}

/// The nearest-rank `p`th percentile of `n` values given as value → how many, in
/// order (0 for none).
fn percentile(counts: &BTreeMap<u64, u64>, n: u64, p: u64) -> u64 {
    let rank = (p * n).div_ceil(100).max(1);
    let mut seen = 0;
    for (&value, &times) in counts {
        seen += times;
        if seen >= rank {
            return value;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let counts = |values: &[u64]| {
            let mut m = BTreeMap::new();
            for v in values {
                *m.entry(*v).or_insert(0) += 1;
            }
            (m, values.len() as u64)
        };
        let (v, n) = counts(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&v, n, 50), 50);
        assert_eq!(percentile(&v, n, 95), 95);
        assert_eq!(percentile(&v, n, 99), 99);
        let (v, n) = counts(&[7]);
        assert_eq!(percentile(&v, n, 99), 7);
        assert_eq!(percentile(&BTreeMap::new(), 0, 50), 0);
        let (v, n) = counts(&[1, 2, 3]);
        assert_eq!(percentile(&v, n, 50), 2);
        // Repeated values count as many times as they occur.
        let (v, n) = counts(&[5, 5, 5, 5, 9]);
        assert_eq!((percentile(&v, n, 50), percentile(&v, n, 95)), (5, 9));
    }
}

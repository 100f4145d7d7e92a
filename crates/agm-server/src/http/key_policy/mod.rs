//! Per-client-key policy at the edge, before any upstream call: an expired key is
//! refused (401), a model outside the key's allow-list too (403), and a key over its
//! requests per minute, requests in flight, or daily request or token budget (UTC day)
//! gets a 429 with the reason and a `Retry-After`, each in the calling API's own error
//! shape. The counted limits apply to the API's POST routes (generation and token
//! counting); model lists are free. Counting happens in this process
//! ([`local::LocalCounters`]) or, with `[cluster] redis_url`, in Redis
//! ([`redis::RedisCounters`]) so the limits hold across replicas; while Redis cannot be
//! reached, each replica counts on its own (said once in the log).
//!
//! A request admitted counts toward the minute and the day's requests at once; its
//! tokens count toward the daily token budget when its answer ends, so the request
//! that crosses the budget is served and the next one refused.

mod local;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use agm_store::{ClientKey, KeyPolicy};

use crate::http::error::{ApiError, ApiKind, ErrorKind, ErrorName};
use local::LocalCounters;
use redis::RedisCounters;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// A limit a request is over, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Rpm(u32),
    Concurrency(u32),
    DailyRequests(u64),
    DailyTokens(u64),
}

impl Limit {
    /// The `limit` label of `agm_key_rejections_total`.
    fn label(self) -> &'static str {
        match self {
            Limit::Rpm(_) => "rpm",
            Limit::Concurrency(_) => "concurrency",
            Limit::DailyRequests(_) => "daily_requests",
            Limit::DailyTokens(_) => "daily_tokens",
        }
    }
}

/// Why a request was not admitted, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub limit: Limit,
    pub retry_after: Option<Duration>,
}

impl Refused {
    fn new(limit: Limit, retry_after: Option<Duration>) -> Refused {
        Refused { limit, retry_after }
    }

    fn message(&self, key: &str) -> String {
        let retry = self
            .retry_after
            .map(|d| format!("; retry after {}", readable(d)))
            .unwrap_or_default();
        match self.limit {
            Limit::Rpm(n) => format!("key '{key}' is over its {n} requests per minute{retry}"),
            Limit::Concurrency(n) => format!(
                "key '{key}' already has {n} requests in flight, its concurrency limit; retry when one ends"
            ),
            Limit::DailyRequests(n) => {
                format!("key '{key}' has used its daily budget of {n} requests (UTC day){retry}")
            }
            Limit::DailyTokens(n) => {
                format!("key '{key}' has used its daily budget of {n} tokens (UTC day){retry}")
            }
        }
    }
}

/// `12 s`, or `3 h 12 min` past two minutes.
fn readable(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        format!("{s} s")
    } else {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    }
}

/// A wait of `ms` milliseconds, rounded up to whole seconds (at least one).
fn retry_in(ms: i64) -> Duration {
    let ms = u64::try_from(ms).unwrap_or(0);
    Duration::from_secs(ms.div_ceil(1000).max(1))
}

/// The key limits' counters: this process's, and Redis when configured.
#[derive(Clone, Default)]
pub struct KeyLimits {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    local: LocalCounters,
    redis: Option<RedisCounters>,
    /// Whether the last Redis call failed (the log says so once per outage).
    redis_down: AtomicBool,
    /// Until when (unix ms) requests skip Redis after a failure, so an outage costs
    /// the request path one timeout per [`REDIS_RETRY_MS`], not one per request.
    redis_skip_until: AtomicI64,
}

/// How long requests count locally after Redis failed before trying it again.
const REDIS_RETRY_MS: i64 = 5_000;

impl KeyLimits {
    /// Counters in this process only.
    pub fn local() -> KeyLimits {
        KeyLimits::default()
    }

    /// Counters in Redis at `url`, their keys under `prefix:key:` (`agm` in a
    /// server; tests give each its own).
    pub fn redis(url: &str, prefix: &str) -> Result<KeyLimits, String> {
        let redis = RedisCounters::new(url, prefix)
            .map_err(|e| format!("[cluster] redis_url is not a Redis URL: {e}"))?;
        Ok(KeyLimits {
            inner: Arc::new(Inner {
                redis: Some(redis),
                ..Inner::default()
            }),
        })
    }

    /// From `[cluster] redis_url` (local counters when it is empty or not a Redis URL,
    /// which the log says), under `[cluster] key_prefix` like the rest of the cluster's
    /// keys.
    pub fn from_config(cluster: &crate::config::ClusterSection) -> KeyLimits {
        let redis_url = cluster.redis_url.trim();
        if redis_url.is_empty() {
            return KeyLimits::local();
        }
        let prefix = cluster.key_prefix.trim_end_matches(':');
        KeyLimits::redis(redis_url, prefix).unwrap_or_else(|e| {
            tracing::error!("{e}; client-key limits are counted by each replica alone");
            KeyLimits::local()
        })
    }

    /// A Redis failure: counted locally from now on until Redis answers again.
    fn redis_failed(&self, error: &::redis::RedisError) {
        self.inner
            .redis_skip_until
            .store(now_ms() + REDIS_RETRY_MS, Ordering::Relaxed);
        if !self.inner.redis_down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %error,
                "Redis cannot be reached: client-key limits are counted by this replica alone until it answers"
            );
        }
    }

    fn redis_answered(&self) {
        if self.inner.redis_down.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again: client-key limits are shared across replicas");
        }
    }

    async fn admit(&self, key_id: &str, limits: &KeyPolicy, now_ms: i64) -> Result<Lease, Refused> {
        let lease_id = uuid::Uuid::new_v4().simple().to_string();
        let mut taken = Taken::Local;
        let skip = now_ms < self.inner.redis_skip_until.load(Ordering::Relaxed);
        if let Some(redis) = self.inner.redis.as_ref().filter(|_| !skip) {
            match redis.admit(key_id, limits, now_ms, &lease_id).await {
                Ok(verdict) => {
                    self.redis_answered();
                    verdict?;
                    taken = Taken::Redis;
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        if taken == Taken::Local {
            self.inner.local.admit(key_id, limits, now_ms, &lease_id)?;
        }
        let mut lease = Lease {
            limits: self.clone(),
            key_id: key_id.to_owned(),
            id: lease_id,
            taken: limits.concurrency.map(|_| taken),
            renew: None,
        };
        if lease.taken == Some(Taken::Redis) {
            lease.renew = Some(self.renew_while_held(key_id.to_owned(), lease.id.clone()));
        }
        Ok(lease)
    }

    /// Renews a Redis lease until aborted (when the request ends).
    fn renew_while_held(&self, key_id: String, lease: String) -> tokio::task::AbortHandle {
        let limits = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(redis::LEASE_RENEW_EVERY).await;
                if let Some(redis) = &limits.inner.redis
                    && let Err(e) = redis.renew(&key_id, &lease, now_ms()).await
                {
                    limits.redis_failed(&e);
                }
            }
        })
        .abort_handle()
    }

    /// Counts `tokens` toward the key's daily token budget.
    fn add_tokens(&self, key_id: String, tokens: u64) {
        let now = now_ms();
        let Some(_) = &self.inner.redis else {
            self.inner.local.add_tokens(&key_id, now, tokens);
            return;
        };
        let limits = self.clone();
        spawn(async move {
            let Some(redis) = &limits.inner.redis else {
                return;
            };
            if let Err(e) = redis.add_tokens(&key_id, now, tokens).await {
                limits.redis_failed(&e);
                limits.inner.local.add_tokens(&key_id, now, tokens);
            }
        });
    }
}

/// Spawns `work` when a runtime is running (the end of a request always is on one).
fn spawn(work: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    Local,
    Redis,
}

/// A request's slot under its key's concurrency limit; dropping it frees the slot.
pub(crate) struct Lease {
    limits: KeyLimits,
    key_id: String,
    id: String,
    /// Where the slot was taken; `None` when concurrency is not limited.
    taken: Option<Taken>,
    renew: Option<tokio::task::AbortHandle>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(renew) = self.renew.take() {
            renew.abort();
        }
        match self.taken {
            None => {}
            Some(Taken::Local) => self.limits.inner.local.release(&self.key_id, &self.id),
            Some(Taken::Redis) => {
                let (limits, key_id, id) =
                    (self.limits.clone(), self.key_id.clone(), self.id.clone());
                spawn(async move {
                    if let Some(redis) = &limits.inner.redis
                        && let Err(e) = redis.release(&key_id, &id).await
                    {
                        // The lease expires by itself within its TTL.
                        limits.redis_failed(&e);
                    }
                });
            }
        }
    }
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// Counts a refusal in `agm_key_rejections_total`.
fn count_rejection(key: &str, limit: &'static str) {
    metrics::counter!("agm_key_rejections_total", "key" => key.to_owned(), "limit" => limit)
        .increment(1);
}

/// The key's checks before its request runs: expiry, then (for `counted` requests) the
/// counted limits. An admitted request holds its concurrency slot, and adds its tokens
/// to the day's budget, until its answer ends.
pub(crate) async fn admit(
    limits: &KeyLimits,
    api: ApiKind,
    key: &ClientKey,
    counted: bool,
) -> Result<(), ApiError> {
    let now = time::OffsetDateTime::now_utc();
    if let Some(expired) = key.policy.expires_at.filter(|_| key.policy.is_expired(now)) {
        count_rejection(&key.name, "expired");
        return Err(ApiError::new(
            api,
            ErrorKind::Authentication,
            format!(
                "key '{}' expired at {}; ask the gateway's operator to extend it (`agm keys set {} --expires 30d`) or for a new key",
                key.name,
                agm_store::rfc3339(expired),
                key.id
            ),
        ));
    }
    if !counted || !key.policy.has_counted_limits() {
        return Ok(());
    }
    let lease = match limits.admit(&key.id, &key.policy, now_ms()).await {
        Ok(lease) => lease,
        Err(refused) => {
            count_rejection(&key.name, refused.limit.label());
            return Err(ApiError {
                retry_after: refused.retry_after,
                ..ApiError::new(api, ErrorKind::RateLimited, refused.message(&key.name))
            });
        }
    };
    let budget = key.policy.daily_tokens.is_some();
    let (limits, key_id) = (limits.clone(), key.id.clone());
    if let Some(ending) = crate::http::request_log::ending() {
        ending.on_end(move |tokens| {
            drop(lease);
            if budget && tokens.total() > 0 {
                limits.add_tokens(key_id, tokens.total());
            }
        });
    }
    Ok(())
}

fn allows(policy: &KeyPolicy, client_model: &str, upstream_model: &str) -> bool {
    policy.allows_model(client_model) || policy.allows_model(upstream_model)
}

/// Whether the current request's key (if any) may use a model listed as `id`, which
/// resolves to `upstream` (itself when not an alias): the model lists show a key only
/// the models it may use.
pub(crate) fn key_may_use(id: &str, upstream: &str) -> bool {
    crate::http::request_log::current_key().is_none_or(|key| allows(&key.policy, id, upstream))
}

/// The error name of a refusal by a key's limits, for the request log.
pub(crate) const REFUSED_BY_KEY: ErrorName = ErrorName("key-limit");

/// Whether the current request's key may use the model the client named
/// (`client_model`) or the one it resolves to (`upstream_model`): either may match one
/// of the key's patterns. A 403 in the API's shape when neither does.
pub(crate) fn check_model(
    api: ApiKind,
    client_model: &str,
    upstream_model: &str,
) -> Result<(), ApiError> {
    let Some(key) = crate::http::request_log::current_key() else {
        return Ok(());
    };
    let policy = &key.policy;
    if allows(policy, client_model, upstream_model) {
        return Ok(());
    }
    count_rejection(&key.name, "model");
    Err(ApiError::new(
        api,
        ErrorKind::PermissionDenied,
        format!(
            "key '{}' may not use model '{client_model}'; it may use: {}",
            key.name,
            policy.models.join(", ")
        ),
    ))
}

/// A change of a key's limits, as `agm keys create|set` and the console's
/// `/api/keys` take it: each one absent is left as it is; `0` clears a number,
/// `never` the expiry, `*` (or nothing) the model list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// Model patterns, comma-separated (`gemini-*,claude-sonnet-4-5`).
    pub models: Option<String>,
    pub rpm: Option<u32>,
    pub concurrency: Option<u32>,
    pub daily_tokens: Option<u64>,
    pub daily_requests: Option<u64>,
    /// `30d`, `2027-01-01`, an RFC 3339 time, or `never`.
    pub expires: Option<String>,
}

impl PolicyChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == PolicyChange::default()
    }

    /// `policy` with this change made at `now`, checked.
    pub fn apply(
        &self,
        mut policy: KeyPolicy,
        now: time::OffsetDateTime,
    ) -> Result<KeyPolicy, String> {
        if let Some(models) = &self.models {
            policy.models = parse_models(models);
        }
        if let Some(n) = self.rpm {
            policy.rpm = (n > 0).then_some(n);
        }
        if let Some(n) = self.concurrency {
            policy.concurrency = (n > 0).then_some(n);
        }
        if let Some(n) = self.daily_tokens {
            policy.daily_tokens = (n > 0).then_some(n);
        }
        if let Some(n) = self.daily_requests {
            policy.daily_requests = (n > 0).then_some(n);
        }
        if let Some(expires) = &self.expires {
            policy.expires_at = parse_expires(expires, now)?;
        }
        policy.check().map_err(|e| e.to_string())?;
        Ok(policy)
    }
}

/// A key's expiry as `agm keys` and the console take it: a duration from `now`
/// (`30d`, `12h`, `2weeks`), a UTC date (`2027-01-01`, midnight), an RFC 3339 time, or
/// `never` (`None`).
pub fn parse_expires(
    text: &str,
    now: time::OffsetDateTime,
) -> Result<Option<time::OffsetDateTime>, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    if let Ok(at) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok(Some(at));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        return Ok(Some(date.midnight().assume_utc()));
    }
    let span = humantime::parse_duration(text).map_err(|_| {
        format!("expiry {text:?}: give a duration (30d, 12h), a date (2027-01-01), an RFC 3339 time, or never")
    })?;
    let span = time::Duration::try_from(span).map_err(|_| format!("expiry {text:?} is too far"))?;
    now.checked_add(span)
        .map(Some)
        .ok_or_else(|| format!("expiry {text:?} is too far"))
}

/// Model patterns from `a,b*` (spaces around commas ignored; `*` alone or nothing:
/// every model).
pub fn parse_models(text: &str) -> Vec<String> {
    let models: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    if models.iter().any(|m| m == "*") {
        return Vec::new();
    }
    models
}

/// The limits in a few words (`gemini-*; 60/min; 2 at once; 1000 requests/day;
/// 100000 tokens/day; expires 2027-01-01T00:00:00Z`), `none` without any.
pub fn describe(policy: &KeyPolicy) -> String {
    let mut parts = Vec::new();
    if !policy.models.is_empty() {
        parts.push(policy.models.join(","));
    }
    if let Some(n) = policy.rpm {
        parts.push(format!("{n}/min"));
    }
    if let Some(n) = policy.concurrency {
        parts.push(format!("{n} at once"));
    }
    if let Some(n) = policy.daily_requests {
        parts.push(format!("{n} requests/day"));
    }
    if let Some(n) = policy.daily_tokens {
        parts.push(format!("{n} tokens/day"));
    }
    if let Some(at) = policy.expires_at {
        parts.push(format!("expires {}", agm_store::rfc3339(at)));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The audit log's word for a key's creation: `created`, with its limits if it has any.
pub fn created(policy: &KeyPolicy) -> String {
    if *policy == KeyPolicy::default() {
        "created".to_owned()
    } else {
        format!("created with limits {}", describe(policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn expiry_forms() {
        let now = datetime!(2026-12-06 12:00 UTC);
        assert_eq!(
            parse_expires("30d", now).unwrap(),
            Some(datetime!(2027-01-05 12:00 UTC))
        );
        assert_eq!(
            parse_expires("2027-01-01", now).unwrap(),
            Some(datetime!(2027-01-01 00:00 UTC))
        );
        assert_eq!(
            parse_expires("2027-01-01T06:00:00Z", now).unwrap(),
            Some(datetime!(2027-01-01 06:00 UTC))
        );
        assert_eq!(parse_expires("never", now).unwrap(), None);
        assert!(parse_expires("soon", now).unwrap_err().contains("30d"));
    }

    #[test]
    fn model_lists_and_descriptions() {
        assert_eq!(parse_models(" a, b* ,"), ["a", "b*"]);
        assert!(parse_models("*").is_empty());
        assert!(parse_models("").is_empty());
        assert_eq!(describe(&KeyPolicy::default()), "none");
        let policy = KeyPolicy {
            models: vec!["gemini-*".into()],
            rpm: Some(60),
            concurrency: Some(2),
            ..KeyPolicy::default()
        };
        assert_eq!(describe(&policy), "gemini-*; 60/min; 2 at once");
        assert_eq!(readable(Duration::from_secs(12)), "12 s");
        assert_eq!(
            readable(Duration::from_secs(3 * 3600 + 12 * 60)),
            "3 h 12 min"
        );
    }
}

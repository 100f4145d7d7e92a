//! The counters in Redis (`[cluster] redis_url`), so a key's limits hold across
//! replicas: one Lua script checks every limit and counts the request atomically. The
//! last minute's requests are a sorted set by time (a sliding minute); the UTC day's
//! requests and tokens are `INCR`/`INCRBY` counters that expire after two days;
//! requests in flight are leases in a sorted set scored by when they expire, renewed
//! while the request runs, so a replica that dies frees its slots within
//! [`LEASE_TTL_MS`]. Every call is bounded by [`REDIS_TIMEOUT`]; an error makes the
//! caller fall back to its local counters.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use agm_store::KeyPolicy;

use super::{DAY_MS, Limit, Refused, retry_in};

/// How long a lease lives without renewal.
pub(crate) const LEASE_TTL_MS: i64 = 30_000;
/// How often a held lease is renewed.
pub(crate) const LEASE_RENEW_EVERY: Duration = Duration::from_secs(10);
/// The longest the request path waits on Redis before counting locally.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Returns `{0, 0}` when admitted, else `{limit, retry_ms}` with limit 1 = rpm,
/// 2 = daily requests, 3 = daily tokens, 4 = concurrency.
const ADMIT: &str = r"
local rpm, dreq, dtok, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if dtok > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= dtok then return {3, 0} end
if dreq > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= dreq then return {2, 0} end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {1, tonumber(oldest[2]) + 60000 - now}
  end
end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= conc then return {4, 1000} end
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[7]), ARGV[6])
  redis.call('PEXPIRE', KEYS[4], ARGV[7])
end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[1], 60000)
end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[8]) end
return {0, 0}
";

/// The Redis side of the key limits. The connection is opened on first use (it then
/// reconnects by itself).
pub(crate) struct RedisCounters {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    /// Every key is under `{prefix}:key:`.
    prefix: String,
    admit: redis::Script,
}

impl RedisCounters {
    /// Counters at `url` (`redis://…`), their keys under `prefix`.
    pub(crate) fn new(url: &str, prefix: &str) -> Result<RedisCounters, redis::RedisError> {
        Ok(RedisCounters {
            client: redis::Client::open(url)?,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            admit: redis::Script::new(ADMIT),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, redis::RedisError> {
        self.conn
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1);
                self.client.get_connection_manager_lazy(config)
            })
            .await
            .cloned()
    }

    fn key(&self, key_id: &str, what: &str) -> String {
        format!("{}:key:{key_id}:{what}", self.prefix)
    }

    fn day_key(&self, key_id: &str, now_ms: i64, what: &str) -> String {
        self.key(key_id, &format!("day:{}:{what}", now_ms.div_euclid(DAY_MS)))
    }

    /// Runs `work` within [`REDIS_TIMEOUT`].
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, redis::RedisError> {
        tokio::time::timeout(REDIS_TIMEOUT, work)
            .await
            .map_err(|_| {
                redis::RedisError::from((redis::ErrorKind::Io, "Redis did not answer in time"))
            })?
    }

    /// `Ok(Ok(()))` admitted, `Ok(Err(_))` over a limit, `Err(_)` Redis failed.
    pub(crate) async fn admit(
        &self,
        key_id: &str,
        limits: &KeyPolicy,
        now_ms: i64,
        lease: &str,
    ) -> Result<Result<(), Refused>, redis::RedisError> {
        let mut conn = self.conn().await?;
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(self.key(key_id, "minute"))
            .key(self.day_key(key_id, now_ms, "requests"))
            .key(self.day_key(key_id, now_ms, "tokens"))
            .key(self.key(key_id, "leases"))
            .arg(limits.rpm.unwrap_or(0))
            .arg(limits.daily_requests.unwrap_or(0))
            .arg(limits.daily_tokens.unwrap_or(0))
            .arg(limits.concurrency.unwrap_or(0))
            .arg(now_ms)
            .arg(lease)
            .arg(LEASE_TTL_MS)
            .arg(2 * DAY_MS);
        let (code, retry_ms): (i64, i64) = self.bounded(invocation.invoke_async(&mut conn)).await?;
        let midnight = retry_in(DAY_MS - now_ms.rem_euclid(DAY_MS));
        Ok(match code {
            0 => Ok(()),
            1 => Err(Refused::new(
                Limit::Rpm(limits.rpm.unwrap_or(0)),
                Some(retry_in(retry_ms)),
            )),
            2 => Err(Refused::new(
                Limit::DailyRequests(limits.daily_requests.unwrap_or(0)),
                Some(midnight),
            )),
            3 => Err(Refused::new(
                Limit::DailyTokens(limits.daily_tokens.unwrap_or(0)),
                Some(midnight),
            )),
            _ => Err(Refused::new(
                Limit::Concurrency(limits.concurrency.unwrap_or(0)),
                Some(retry_in(retry_ms)),
            )),
        })
    }

    /// Keeps a lease alive for another [`LEASE_TTL_MS`] (only if it is still held).
    pub(crate) async fn renew(
        &self,
        key_id: &str,
        lease: &str,
        now_ms: i64,
    ) -> Result<(), redis::RedisError> {
        let mut conn = self.conn().await?;
        let key = self.key(key_id, "leases");
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(&key)
            .arg("XX")
            .arg(now_ms + LEASE_TTL_MS)
            .arg(lease)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(LEASE_TTL_MS)
            .ignore();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    pub(crate) async fn release(&self, key_id: &str, lease: &str) -> Result<(), redis::RedisError> {
        let mut conn = self.conn().await?;
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(self.key(key_id, "leases")).arg(lease);
        self.bounded(cmd.query_async::<()>(&mut conn)).await
    }

    pub(crate) async fn add_tokens(
        &self,
        key_id: &str,
        now_ms: i64,
        tokens: u64,
    ) -> Result<(), redis::RedisError> {
        let mut conn = self.conn().await?;
        let key = self.day_key(key_id, now_ms, "tokens");
        let mut pipe = redis::pipe();
        pipe.cmd("INCRBY")
            .arg(&key)
            .arg(tokens)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(2 * DAY_MS)
            .ignore();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }
}

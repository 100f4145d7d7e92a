//! Cluster mode's Redis half: several `agm serve` replicas sharing one pool.
//!
//! PostgreSQL (`[storage] backend = "postgres"`) holds what must not be lost; Redis
//! (`[cluster] redis_url`) holds the hot shared state, every key under `[cluster]
//! key_prefix` and with a TTL:
//!
//! | key | holds | TTL |
//! | --- | --- | --- |
//! | `cooldown:<account>:<model>` | a running cooldown (JSON: its wall-clock end) | until it ends |
//! | `sticky:<session>` | the account a conversation sticks to | `[routing] sticky_ttl` |
//! | `sig:<session>` | the thinking signatures handed out in a conversation | 3 h |
//! | `lock:refresh:<account>` | the replica refreshing the account's token | 30 s |
//! | `lease:quota:<account>` | the replica fetching the account's quota this interval | `[routing] quota_refresh` |
//! | `leader` | the replica that runs the background jobs | 10 s, renewed every 2 s |
//!
//! and one pub/sub channel, `events`, on which each replica publishes what it changed
//! ([`Event`]: cooldowns set and cleared, circuit-breaker transitions, thinking
//! signatures, safe-mode changes, fresh quota snapshots) and which every replica follows
//! and applies to its own in-process state. Reads on the request path stay local; the
//! only Redis call a request makes is the sticky-session read of a conversation (and
//! the writes of what it changed).
//!
//! A replica that loses Redis keeps serving on its local state: `/readyz` says
//! `"cluster": {"redis": "degraded"}`, the gauge `agm_cluster_redis_up` is 0, the log
//! says it once. It stops being the leader when its lease runs out (so no job runs
//! twice for long), refreshes tokens on its own, and when Redis answers again it
//! re-publishes its running cooldowns and reads everyone else's.

pub mod sync;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use agm_pool::cooldown::CooldownReason;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

/// How long each Redis command may take before the replica calls Redis lost.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the leader lease lasts, and how often the leader renews it.
pub const LEADER_TTL: Duration = Duration::from_secs(10);
pub const LEADER_RENEW_EVERY: Duration = Duration::from_secs(2);
/// How long a token-refresh lock is held at most (a dead holder frees it then).
pub const REFRESH_LOCK_TTL: Duration = Duration::from_secs(30);

/// Deletes a lock or lease only if this replica still holds it.
const RELEASE: &str = r"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
/// Takes the lease, or extends it if this replica holds it; 1 if held afterwards.
const HOLD: &str = r"local v = redis.call('get', KEYS[1])
if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0";

/// Why cluster mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "[cluster] redis_url is not a usable Redis URL ({0}): write redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS"
    )]
    Url(String),
}

/// What one replica tells the others. Times are wall-clock Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// `account` cools down for `model` until `until_ms`.
    Cooldown(SharedCooldown),
    /// The cooldowns of `account` (all when `None`) were cleared.
    CooldownsCleared { account: Option<String> },
    /// A circuit opened (`open_ms` left) or closed (`None`).
    Breaker {
        endpoint: String,
        account: String,
        open_ms: Option<u64>,
        reopen_count: u32,
    },
    /// Thinking signatures an answer of `family` handed out in `session`.
    Signatures {
        session: String,
        family: agm_translate::thinking::ModelFamily,
        signatures: Vec<(String, Option<String>)>,
    },
    /// The stored safe-mode record changed: read it now.
    SafeMode,
    /// A fresh quota snapshot of `account` was stored: read it.
    Quota { account: String },
}

/// A cooldown as Redis and the events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedCooldown {
    pub account: String,
    pub model: String,
    pub until_ms: i64,
    pub reason: CooldownReason,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) from: String,
    pub(crate) event: Event,
}

/// The wall clock in Unix milliseconds.
pub fn wall_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// The instant `until_ms` (wall clock) stands for, if it is still ahead.
pub fn instant_of(until_ms: i64) -> Option<Instant> {
    let left = until_ms.saturating_sub(wall_ms());
    (left > 0).then(|| Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// The wall-clock end of `until`.
pub fn ms_of(until: Instant) -> i64 {
    let left = until.saturating_duration_since(Instant::now());
    wall_ms().saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX))
}

/// The connection to Redis, and what this replica knows of its place in the cluster.
pub struct Cluster {
    pub(crate) client: redis::Client,
    prefix: String,
    replica: String,
    conn: RwLock<Option<ConnectionManager>>,
    up: AtomicBool,
    /// Until when this replica holds the leader lease, as far as it knows.
    leader_until: Mutex<Option<Instant>>,
    /// After losing Redis, this replica takes a free leader lease only from then on
    /// ([`LEADER_TTL`] later): Redis may return empty while the leader, which lost it
    /// too, still counts on its lease.
    claim_after: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("Cluster")
            .field("prefix", &self.prefix)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster handle for `[cluster]`, or `None` when no Redis is configured (one
    /// process on its own: nothing here runs). Redis need not answer yet: the replica
    /// then starts degraded and connects when it can.
    pub fn from_config(
        config: &crate::config::ClusterSection,
    ) -> Result<Option<Arc<Cluster>>, ClusterError> {
        let url = config.redis_url.trim();
        if url.is_empty() {
            return Ok(None);
        }
        let client = redis::Client::open(url).map_err(|e| ClusterError::Url(e.to_string()))?;
        metrics::gauge!("agm_cluster_redis_up").set(0.0);
        Ok(Some(Arc::new(Cluster {
            client,
            prefix: config.key_prefix.clone(),
            replica: replica_id(),
            conn: RwLock::new(None),
            up: AtomicBool::new(false),
            leader_until: Mutex::new(None),
            claim_after: Mutex::new(None),
        })))
    }

    /// Where Redis is (`host:port`, never the password).
    pub fn address(&self) -> String {
        self.client.get_connection_info().addr().to_string()
    }

    /// For `agm doctor`: whether Redis answers a PING now, and which replica leads.
    pub async fn probe(&self) -> Result<Option<String>, String> {
        if !self.connect().await {
            return Err(format!("Redis at {} does not answer", self.address()));
        }
        self.mark_up();
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key("leader"));
        Ok(self.query::<Option<String>>(&cmd).await.flatten())
    }

    /// This replica's id: host name, process id and a random part.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether Redis answers (as of the last call).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether this replica holds the leader lease now: it runs the background jobs
    /// that must run once per cluster. A replica that lost Redis keeps the lease it had
    /// until it runs out, then runs none of them until Redis returns.
    pub fn is_leader(&self) -> bool {
        self.leader_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    /// What `/readyz` shows.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "redis": if self.is_up() { "up" } else { "degraded" },
            "replica": self.replica,
            "leader": self.is_leader(),
        })
    }

    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub(crate) fn channel(&self) -> String {
        self.key("events")
    }

    fn connection(&self) -> Option<ConnectionManager> {
        if !self.is_up() {
            return None;
        }
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Connects the command connection if it is not yet; true when Redis answers.
    pub(crate) async fn connect(&self) -> bool {
        let existing = self
            .conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut conn = match existing {
            Some(conn) => conn,
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_number_of_retries(1);
                match self.client.get_connection_manager_with_config(config).await {
                    Ok(conn) => {
                        *self.conn.write().unwrap_or_else(PoisonError::into_inner) =
                            Some(conn.clone());
                        conn
                    }
                    Err(e) => {
                        self.mark_down(&e);
                        return false;
                    }
                }
            }
        };
        match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(_) => true,
            Err(e) => {
                self.mark_down(&e);
                false
            }
        }
    }

    pub(crate) fn mark_up(&self) -> bool {
        let was_down = !self.up.swap(true, Ordering::Relaxed);
        if was_down {
            metrics::gauge!("agm_cluster_redis_up").set(1.0);
            tracing::info!(replica = %self.replica, "Redis answers: the hot state is shared with the cluster");
        }
        was_down
    }

    pub(crate) fn mark_down(&self, error: &dyn std::fmt::Display) {
        if self.up.swap(false, Ordering::Relaxed) {
            *self
                .claim_after
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + LEADER_TTL);
            metrics::gauge!("agm_cluster_redis_up").set(0.0);
            tracing::error!(replica = %self.replica, error = %error, "lost Redis: serving on this replica's own state until it returns (degraded, see /readyz)");
        } else {
            tracing::debug!(error = %error, "Redis still does not answer");
        }
    }

    /// Runs `cmd`; `None` (and degraded) when Redis does not answer.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.connection()?;
        match cmd.query_async::<T>(&mut conn).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.mark_down(&e);
                None
            }
        }
    }

    async fn pipeline<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let mut conn = self.connection()?;
        match pipe.query_async::<T>(&mut conn).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.mark_down(&e);
                None
            }
        }
    }

    async fn script(&self, script: &str, key: &str, args: &[String]) -> Option<i64> {
        let mut conn = self.connection()?;
        let script = redis::Script::new(script);
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(arg);
        }
        match invocation.invoke_async::<i64>(&mut conn).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.mark_down(&e);
                None
            }
        }
    }

    fn envelope(&self, event: Event) -> String {
        serde_json::to_string(&Envelope {
            from: self.replica.clone(),
            event,
        })
        .unwrap_or_default()
    }

    /// Tells every other replica about `event`.
    pub async fn publish(&self, event: Event) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.channel()).arg(self.envelope(event));
        let _: Option<i64> = self.query(&cmd).await;
    }

    /// Stores a running cooldown (with its TTL) and tells every replica.
    pub async fn share_cooldown(&self, cooldown: SharedCooldown) {
        let left = cooldown.until_ms.saturating_sub(wall_ms());
        if left <= 0 {
            return;
        }
        let key = self.key(&format!("cooldown:{}:{}", cooldown.account, cooldown.model));
        let value = serde_json::to_string(&cooldown).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("PX")
            .arg(left)
            .ignore();
        pipe.cmd("PUBLISH")
            .arg(self.channel())
            .arg(self.envelope(Event::Cooldown(cooldown)))
            .ignore();
        let _: Option<()> = self.pipeline(&pipe).await;
    }

    /// Stores an answer's thinking signatures under its conversation (for `ttl`, the
    /// signature cache's) and announces them, in one round trip: replicas that follow
    /// the channel take them at once, one that missed it finds them on a local miss.
    pub async fn share_signatures(&self, event: Event, ttl: Duration) {
        let Event::Signatures {
            session,
            family,
            signatures,
        } = &event
        else {
            return;
        };
        let key = self.key(&format!("sig:{session}"));
        let mut pipe = redis::pipe();
        for (signature, tool_use_id) in signatures {
            let value = serde_json::json!({"family": family, "tool_use_id": tool_use_id});
            pipe.cmd("HSET")
                .arg(&key)
                .arg(signature)
                .arg(value.to_string())
                .ignore();
        }
        pipe.cmd("PEXPIRE").arg(&key).arg(millis(ttl)).ignore();
        pipe.cmd("PUBLISH")
            .arg(self.channel())
            .arg(self.envelope(event))
            .ignore();
        let _: Option<()> = self.pipeline(&pipe).await;
    }

    /// The thinking signatures stored under conversation `session`: (signature,
    /// family, tool call).
    pub async fn signatures(
        &self,
        session: &str,
    ) -> Option<Vec<(String, agm_translate::thinking::ModelFamily, Option<String>)>> {
        #[derive(Deserialize)]
        struct Stored {
            family: agm_translate::thinking::ModelFamily,
            tool_use_id: Option<String>,
        }
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.key(&format!("sig:{session}")));
        let all: std::collections::HashMap<String, String> = self.query(&cmd).await?;
        Some(
            all.into_iter()
                .filter_map(|(signature, value)| {
                    let stored: Stored = serde_json::from_str(&value).ok()?;
                    Some((signature, stored.family, stored.tool_use_id))
                })
                .collect(),
        )
    }

    /// Every running cooldown stored in Redis (`None` when Redis does not answer).
    pub async fn cooldowns(&self) -> Option<Vec<SharedCooldown>> {
        let keys = self.scan(&self.key("cooldown:*")).await?;
        if keys.is_empty() {
            return Some(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in &keys {
            cmd.arg(key);
        }
        let values: Vec<Option<String>> = self.query(&cmd).await?;
        Some(
            values
                .into_iter()
                .flatten()
                .filter_map(|v| serde_json::from_str(&v).ok())
                .collect(),
        )
    }

    /// Deletes the stored cooldowns of `account` (all when `None`) and tells every
    /// replica to clear its own.
    pub async fn clear_cooldowns(&self, account: Option<&str>) {
        let pattern = match account {
            Some(a) => self.key(&format!("cooldown:{a}:*")),
            None => self.key("cooldown:*"),
        };
        if let Some(keys) = self.scan(&pattern).await
            && !keys.is_empty()
        {
            let mut cmd = redis::cmd("DEL");
            for key in &keys {
                cmd.arg(key);
            }
            let _: Option<i64> = self.query(&cmd).await;
        }
        self.publish(Event::CooldownsCleared {
            account: account.map(str::to_owned),
        })
        .await;
    }

    async fn scan(&self, pattern: &str) -> Option<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500);
            let (next, mut batch): (u64, Vec<String>) = self.query(&cmd).await?;
            keys.append(&mut batch);
            if next == 0 {
                return Some(keys);
            }
            cursor = next;
        }
    }

    /// The account conversation `session` sticks to in the cluster, if any; the
    /// binding's TTL starts again at `ttl` (one `GETEX`, Redis 6.2 or newer).
    pub async fn sticky(&self, session: &str, ttl: Duration) -> Option<String> {
        let mut cmd = redis::cmd("GETEX");
        cmd.arg(self.key(&format!("sticky:{session}")))
            .arg("PX")
            .arg(millis(ttl));
        self.query::<Option<String>>(&cmd).await.flatten()
    }

    /// Binds `session` to `account` for `ttl` (from now).
    pub async fn set_sticky(&self, session: &str, account: &str, ttl: Duration) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(&format!("sticky:{session}")))
            .arg(account)
            .arg("PX")
            .arg(millis(ttl));
        let _: Option<()> = self.query(&cmd).await;
    }

    /// Takes `name` for `ttl` if nobody holds it: `Some(true)` taken, `Some(false)`
    /// held by another replica, `None` Redis does not answer.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Option<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(name))
            .arg(&self.replica)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        self.query::<Option<String>>(&cmd)
            .await
            .map(|ok| ok.is_some())
    }

    /// Whether anybody holds `name` (`None`: Redis does not answer).
    pub async fn is_locked(&self, name: &str) -> Option<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(name));
        self.query::<i64>(&cmd).await.map(|n| n > 0)
    }

    /// Frees `name` if this replica holds it.
    pub async fn unlock(&self, name: &str) {
        let _ = self
            .script(
                RELEASE,
                &self.key(name),
                std::slice::from_ref(&self.replica),
            )
            .await;
    }

    /// Takes or renews the leader lease (a free one only once `claim_after` has passed);
    /// returns whether this replica leads.
    pub(crate) async fn hold_leadership(&self) -> bool {
        let asked_at = Instant::now();
        let waits = self
            .claim_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|after| asked_at < after);
        if waits && !self.is_leader() {
            return false;
        }
        let held = self
            .script(
                HOLD,
                &self.key("leader"),
                &[self.replica.clone(), millis(LEADER_TTL).to_string()],
            )
            .await;
        let mut until = self
            .leader_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let was = until.is_some_and(|u| Instant::now() < u);
        match held {
            Some(1) => {
                // Counted from before the call: never later than Redis's own expiry.
                *until = Some(asked_at + LEADER_TTL);
                if !was {
                    tracing::info!(replica = %self.replica, "this replica now leads: it runs the cluster's background jobs");
                }
                true
            }
            Some(_) => {
                *until = None;
                false
            }
            // Redis is gone: the lease this replica holds runs out on its own.
            None => was,
        }
    }

    /// Gives the leader lease up (at shutdown), so another replica takes over at once.
    pub async fn resign(&self) {
        if self.is_leader() {
            self.unlock("leader").await;
            *self
                .leader_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `host-pid-random`: unique per process, readable in logs.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agm".to_owned());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0x00ff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_written() {
        let event = Event::Cooldown(SharedCooldown {
            account: "a1".into(),
            model: "gemini-3-flash".into(),
            until_ms: 42,
            reason: CooldownReason::RateLimited,
        });
        let text = serde_json::to_string(&Envelope {
            from: "r1".into(),
            event: event.clone(),
        })
        .unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.event, event);
        assert_eq!(back.from, "r1");
    }

    #[test]
    fn wall_clock_and_instants_convert_both_ways() {
        assert!(instant_of(wall_ms() - 5).is_none());
        let until = Instant::now() + Duration::from_secs(30);
        let back = instant_of(ms_of(until)).unwrap();
        let diff = if back > until {
            back - until
        } else {
            until - back
        };
        assert!(diff < Duration::from_millis(50), "{diff:?}");
    }

    /// Two replicas' handles on the machine's Redis (`AGM_TEST_REDIS_URL`), under a
    /// prefix of their own; `None` (skipped) only with `AGM_TEST_NO_REDIS=1`.
    async fn two_replicas() -> Option<(Arc<Cluster>, Arc<Cluster>)> {
        let url = std::env::var("AGM_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let section = crate::config::ClusterSection {
            redis_url: url.clone(),
            key_prefix: format!("agm-unit-{:016x}:", rand::random::<u64>()),
        };
        let a = Cluster::from_config(&section).unwrap().unwrap();
        let b = Cluster::from_config(&section).unwrap().unwrap();
        if !(a.connect().await && b.connect().await) {
            assert!(
                std::env::var("AGM_TEST_NO_REDIS").as_deref() == Ok("1"),
                "Redis at {url} does not answer: start it, point AGM_TEST_REDIS_URL at one, or set AGM_TEST_NO_REDIS=1 to skip"
            );
            return None;
        }
        a.mark_up();
        b.mark_up();
        Some((a, b))
    }

    #[tokio::test]
    async fn one_leader_at_a_time_and_the_lease_moves_when_given_up() {
        let Some((a, b)) = two_replicas().await else {
            return;
        };
        assert!(a.hold_leadership().await);
        assert!(a.is_leader());
        assert!(!b.hold_leadership().await, "two leaders");
        assert!(!b.is_leader());
        assert!(a.hold_leadership().await, "the leader renews its lease");
        a.resign().await;
        assert!(!a.is_leader());
        assert!(b.hold_leadership().await, "the lease did not move");
        b.resign().await;
    }

    #[tokio::test]
    async fn a_lock_is_held_once_and_freed_only_by_its_holder() {
        let Some((a, b)) = two_replicas().await else {
            return;
        };
        let ttl = Duration::from_secs(5);
        assert_eq!(a.try_lock("lock:refresh:x", ttl).await, Some(true));
        assert_eq!(b.try_lock("lock:refresh:x", ttl).await, Some(false));
        b.unlock("lock:refresh:x").await;
        assert_eq!(
            b.is_locked("lock:refresh:x").await,
            Some(true),
            "freed by another replica"
        );
        a.unlock("lock:refresh:x").await;
        assert_eq!(b.is_locked("lock:refresh:x").await, Some(false));
    }

    #[tokio::test]
    async fn cooldowns_and_sticky_sessions_are_stored_with_their_ttl() {
        let Some((a, b)) = two_replicas().await else {
            return;
        };
        let until_ms = wall_ms() + 60_000;
        a.share_cooldown(SharedCooldown {
            account: "a1".into(),
            model: "m".into(),
            until_ms,
            reason: CooldownReason::RateLimited,
        })
        .await;
        let seen = b.cooldowns().await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].until_ms, until_ms);
        let mut ttl = redis::cmd("PTTL");
        ttl.arg(a.key("cooldown:a1:m"));
        let left: i64 = b.query(&ttl).await.unwrap();
        assert!((50_000..=60_000).contains(&left), "{left}");
        b.clear_cooldowns(Some("a1")).await;
        assert!(a.cooldowns().await.unwrap().is_empty());

        a.set_sticky("s1", "acct", Duration::from_secs(30)).await;
        assert_eq!(
            b.sticky("s1", Duration::from_secs(60)).await.as_deref(),
            Some("acct")
        );
        let mut ttl = redis::cmd("PTTL");
        ttl.arg(a.key("sticky:s1"));
        let left: i64 = b.query(&ttl).await.unwrap();
        assert!(left > 30_000, "the read renews the binding's TTL: {left}");
        let mut cmd = redis::cmd("DEL");
        cmd.arg(a.key("sticky:s1"));
        let _: Option<i64> = a.query(&cmd).await;
    }

    #[test]
    fn no_url_no_cluster_and_a_bad_url_says_what_to_write() {
        let none = Cluster::from_config(&crate::config::ClusterSection::default()).unwrap();
        assert!(none.is_none());
        let err = Cluster::from_config(&crate::config::ClusterSection {
            redis_url: "redis://[bad".into(),
            key_prefix: "agm:".into(),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("redis://"), "{err}");
    }
}

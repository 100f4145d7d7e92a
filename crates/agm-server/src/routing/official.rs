//! The official Gemini API pool (API keys, paid): which model answers, which key is
//! next, and the optional daily request cap.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agm_translate::models::OfficialEquivalents;
use time::OffsetDateTime;

/// Upstream model ids → the official API's names, with the configured Gemini models
/// that answer Claude requests.
#[derive(Debug, Clone)]
pub struct OfficialModels {
    claude_large: String,
    claude_small: String,
}

impl OfficialModels {
    pub fn new(claude_large: &str, claude_small: &str) -> OfficialModels {
        OfficialModels {
            claude_large: claude_large.to_owned(),
            claude_small: claude_small.to_owned(),
        }
    }

    pub fn resolve(&self, upstream_model: &str) -> String {
        OfficialEquivalents {
            claude_large: &self.claude_large,
            claude_small: &self.claude_small,
        }
        .resolve(upstream_model)
        .to_owned()
    }
}

/// Round-robin over the keys.
#[derive(Debug, Default)]
pub struct KeyCursor(AtomicUsize);

impl KeyCursor {
    /// The next index below `len` (`len` > 0).
    pub fn next(&self, len: usize) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed) % len.max(1)
    }
}

/// `[safe_mode] gemini_api_keys` in force (with `GEMINI_API_KEY`): as loaded, replaced
/// while the server runs when the console changes them. A request takes the list once
/// and keeps it.
#[derive(Debug, Default)]
pub struct LiveKeys(std::sync::RwLock<std::sync::Arc<Vec<String>>>);

impl LiveKeys {
    pub fn new(keys: Vec<String>) -> LiveKeys {
        LiveKeys(std::sync::RwLock::new(std::sync::Arc::new(keys)))
    }

    pub fn get(&self) -> std::sync::Arc<Vec<String>> {
        std::sync::Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn set(&self, keys: Vec<String>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(keys);
    }
}

/// `[safe_mode] daily_request_cap`: requests per UTC day to the paid pool.
///
/// Counted here on the request path (no I/O) and added to a count in the shared state
/// by [`DailyCap::sync`] every few seconds and at shutdown, so a restart keeps the
/// day's count and replicas sharing a store share the cap (each may go over by what
/// the others sent since their last sync).
#[derive(Debug)]
pub struct DailyCap {
    /// The cap in force (0: none); the console changes it while the server runs.
    cap: std::sync::atomic::AtomicU64,
    count: Mutex<DayCount>,
}

#[derive(Debug, Default, Clone, Copy)]
struct DayCount {
    /// UTC day number.
    day: i64,
    /// The day's count in the shared state, as last read.
    shared: u64,
    /// Counted here and being written by a sync.
    syncing: u64,
    /// Counted here since.
    local: u64,
}

impl DayCount {
    fn total(&self) -> u64 {
        self.shared + self.syncing + self.local
    }
}

/// What the shared state keeps: the requests sent to the paid pool on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredDailyCount {
    pub day: i64,
    pub requests: u64,
}

fn utc_day(now: OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(86_400)
}

impl DailyCap {
    pub fn new(cap: u64) -> DailyCap {
        DailyCap {
            cap: std::sync::atomic::AtomicU64::new(cap),
            count: Mutex::new(DayCount::default()),
        }
    }

    /// The cap in force (0: none).
    pub fn cap(&self) -> u64 {
        self.cap.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes the cap; today's count stays.
    pub fn set_cap(&self, cap: u64) {
        self.cap.store(cap, std::sync::atomic::Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DayCount> {
        self.count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one request now; `Some(time to midnight UTC)` when the cap is reached
    /// (the request is then not counted and must not be sent).
    pub fn check(&self) -> Option<Duration> {
        self.check_at(OffsetDateTime::now_utc())
    }

    fn check_at(&self, now: OffsetDateTime) -> Option<Duration> {
        let cap = self.cap();
        let day = utc_day(now);
        let mut count = self.lock();
        if count.day != day {
            *count = DayCount {
                day,
                ..DayCount::default()
            };
        }
        if cap != 0 && count.total() >= cap {
            let midnight = (day + 1) * 86_400;
            let left = u64::try_from(midnight - now.unix_timestamp()).unwrap_or(1);
            return Some(Duration::from_secs(left.max(1)));
        }
        count.local += 1;
        None
    }

    /// Requests sent to the paid pool today (as far as this process knows), and the cap
    /// (0: none).
    pub fn today(&self) -> (u64, u64) {
        let count = self.lock();
        let total = if count.day == utc_day(OffsetDateTime::now_utc()) {
            count.total()
        } else {
            0
        };
        (total, self.cap())
    }

    /// Adds what was counted here since the last sync to the shared count and reads it
    /// back (with what other processes added).
    pub async fn sync(
        &self,
        shared: &crate::state::Shared,
    ) -> Result<(), crate::state::StateError> {
        self.sync_at(shared, OffsetDateTime::now_utc()).await
    }

    async fn sync_at(
        &self,
        shared: &crate::state::Shared,
        now: OffsetDateTime,
    ) -> Result<(), crate::state::StateError> {
        let (day, delta) = {
            let mut count = self.lock();
            if count.day != utc_day(now) {
                // A new day: yesterday's unsynced requests no longer matter to the cap.
                *count = DayCount {
                    day: utc_day(now),
                    ..DayCount::default()
                };
            }
            count.syncing = count.local;
            count.local = 0;
            (count.day, count.syncing)
        };
        let written = shared
            .update(
                &crate::state::keys::OFFICIAL_DAILY,
                move |stored: Option<StoredDailyCount>| {
                    let mut stored = stored
                        .filter(|s| s.day == day)
                        .unwrap_or(StoredDailyCount { day, requests: 0 });
                    stored.requests += delta;
                    // Nothing to add and nothing stored yet: leave the store alone.
                    let write = (delta > 0).then_some(stored);
                    (write, stored.requests)
                },
            )
            .await;
        let mut count = self.lock();
        match written {
            Ok(total) if count.day == day => {
                count.shared = total;
                count.syncing = 0;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                if count.day == day {
                    // Counted again at the next sync.
                    count.local += count.syncing;
                    count.syncing = 0;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_for_the_day_and_resets_at_midnight() {
        let cap = DailyCap::new(2);
        let noon = OffsetDateTime::from_unix_timestamp(1_760_000_000 / 86_400 * 86_400 + 43_200)
            .expect("time");
        assert_eq!(cap.check_at(noon), None);
        assert_eq!(cap.check_at(noon), None);
        assert_eq!(cap.check_at(noon), Some(Duration::from_secs(43_200)));
        let tomorrow = noon + time::Duration::days(1);
        assert_eq!(cap.check_at(tomorrow), None);
        assert_eq!(DailyCap::new(0).check_at(noon), None, "0: no cap");
    }

    #[tokio::test]
    async fn the_count_survives_a_restart_and_is_shared() {
        let shared = crate::state::Shared::new(agm_store::Store::open_in_memory().await.unwrap());
        let noon = OffsetDateTime::from_unix_timestamp(1_760_000_000 / 86_400 * 86_400 + 43_200)
            .expect("time");
        let first = DailyCap::new(3);
        assert_eq!(first.check_at(noon), None);
        assert_eq!(first.check_at(noon), None);
        first.sync_at(&shared, noon).await.unwrap();
        // A restart, or a second replica on the same store: it has one request left.
        let second = DailyCap::new(3);
        second.sync_at(&shared, noon).await.unwrap();
        assert_eq!(second.check_at(noon), None);
        assert!(
            second.check_at(noon).is_some(),
            "the cap holds across processes"
        );
        second.sync_at(&shared, noon).await.unwrap();
        first.sync_at(&shared, noon).await.unwrap();
        assert!(
            first.check_at(noon).is_some(),
            "the first sees the second's request"
        );
        // The next day starts from zero, whatever is stored.
        let tomorrow = noon + time::Duration::days(1);
        first.sync_at(&shared, tomorrow).await.unwrap();
        assert_eq!(first.check_at(tomorrow), None);
    }

    #[test]
    fn claude_is_answered_by_the_configured_gemini() {
        let models = OfficialModels::new("gemini-2.5-pro", "gemini-2.5-flash-lite");
        assert_eq!(models.resolve("claude-sonnet-4-5"), "gemini-2.5-pro");
        assert_eq!(models.resolve("claude-haiku-4-5"), "gemini-2.5-flash-lite");
        assert_eq!(models.resolve("gemini-3-flash"), "gemini-3-flash-preview");
    }

    #[test]
    fn keys_rotate() {
        let cursor = KeyCursor::default();
        let picks: Vec<usize> = (0..5).map(|_| cursor.next(2)).collect();
        assert_eq!(picks, vec![0, 1, 0, 1, 0]);
    }
}

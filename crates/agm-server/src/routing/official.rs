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

/// `[safe_mode] daily_request_cap`: requests per UTC day to the paid pool, counted in
/// this process.
#[derive(Debug)]
pub struct DailyCap {
    /// The cap in force (0: none); the console changes it while the server runs.
    cap: std::sync::atomic::AtomicU64,
    /// (UTC day number, requests that day).
    count: Mutex<(i64, u64)>,
}

impl DailyCap {
    pub fn new(cap: u64) -> DailyCap {
        DailyCap {
            cap: std::sync::atomic::AtomicU64::new(cap),
            count: Mutex::new((0, 0)),
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

    /// Counts one request now; `Some(time to midnight UTC)` when the cap is reached
    /// (the request is then not counted and must not be sent).
    pub fn check(&self) -> Option<Duration> {
        self.check_at(OffsetDateTime::now_utc())
    }

    fn check_at(&self, now: OffsetDateTime) -> Option<Duration> {
        let cap = self.cap();
        if cap == 0 {
            return None;
        }
        let day = now.unix_timestamp().div_euclid(86_400);
        let mut count = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if count.0 != day {
            *count = (day, 0);
        }
        if count.1 >= cap {
            let midnight = (day + 1) * 86_400;
            let left = u64::try_from(midnight - now.unix_timestamp()).unwrap_or(1);
            return Some(Duration::from_secs(left.max(1)));
        }
        count.1 += 1;
        None
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

//! The counters of one process: a sliding minute of request times, the UTC day's
//! requests and tokens, and the leases of requests in flight, per key. Used alone
//! without Redis, and by the Redis counters while Redis cannot be reached.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use agm_store::KeyPolicy;

use super::{DAY_MS, Limit, MINUTE_MS, Refused, retry_in};

#[derive(Default)]
pub(crate) struct LocalCounters {
    keys: Mutex<HashMap<String, KeyCounts>>,
}

#[derive(Default)]
struct KeyCounts {
    /// When each request of the last minute was admitted (unix ms), oldest first.
    recent: VecDeque<i64>,
    /// The UTC day (days since 1970) the day's counts are for.
    day: i64,
    day_requests: u64,
    day_tokens: u64,
    in_flight: HashSet<String>,
}

impl KeyCounts {
    fn roll(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(DAY_MS);
        if day != self.day {
            self.day = day;
            self.day_requests = 0;
            self.day_tokens = 0;
        }
        while self
            .recent
            .front()
            .is_some_and(|&at| at <= now_ms - MINUTE_MS)
        {
            self.recent.pop_front();
        }
    }
}

impl LocalCounters {
    fn with<T>(&self, key_id: &str, f: impl FnOnce(&mut KeyCounts) -> T) -> T {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(keys.entry(key_id.to_owned()).or_default())
    }

    /// Admits a request of `key_id` under `limits` at `now_ms` (taking lease `lease`
    /// when concurrency is limited), or says which limit it is over.
    pub(crate) fn admit(
        &self,
        key_id: &str,
        limits: &KeyPolicy,
        now_ms: i64,
        lease: &str,
    ) -> Result<(), Refused> {
        self.with(key_id, |k| {
            k.roll(now_ms);
            let midnight = retry_in(DAY_MS - now_ms.rem_euclid(DAY_MS));
            if let Some(limit) = limits.daily_tokens
                && k.day_tokens >= limit
            {
                return Err(Refused::new(Limit::DailyTokens(limit), Some(midnight)));
            }
            if let Some(limit) = limits.daily_requests
                && k.day_requests >= limit
            {
                return Err(Refused::new(Limit::DailyRequests(limit), Some(midnight)));
            }
            if let Some(limit) = limits.rpm
                && k.recent.len() as u64 >= u64::from(limit)
            {
                let oldest = k.recent.front().copied().unwrap_or(now_ms);
                let wait = retry_in(oldest + MINUTE_MS - now_ms);
                return Err(Refused::new(Limit::Rpm(limit), Some(wait)));
            }
            if let Some(limit) = limits.concurrency
                && k.in_flight.len() as u64 >= u64::from(limit)
            {
                return Err(Refused::new(
                    Limit::Concurrency(limit),
                    Some(retry_in(1000)),
                ));
            }
            k.recent.push_back(now_ms);
            k.day_requests += 1;
            if limits.concurrency.is_some() {
                k.in_flight.insert(lease.to_owned());
            }
            Ok(())
        })
    }

    pub(crate) fn release(&self, key_id: &str, lease: &str) {
        self.with(key_id, |k| k.in_flight.remove(lease));
    }

    pub(crate) fn add_tokens(&self, key_id: &str, now_ms: i64, tokens: u64) {
        self.with(key_id, |k| {
            k.roll(now_ms);
            k.day_tokens = k.day_tokens.saturating_add(tokens);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % DAY_MS + 3_600_000;

    fn limits() -> KeyPolicy {
        KeyPolicy {
            rpm: Some(2),
            concurrency: Some(1),
            daily_requests: Some(3),
            daily_tokens: Some(100),
            ..KeyPolicy::default()
        }
    }

    #[test]
    fn the_minute_slides_and_retry_after_says_when_a_slot_frees() {
        let c = LocalCounters::default();
        let only_rpm = KeyPolicy {
            rpm: Some(2),
            ..KeyPolicy::default()
        };
        c.admit("k", &only_rpm, T0, "a").unwrap();
        c.admit("k", &only_rpm, T0 + 20_000, "b").unwrap();
        let refused = c.admit("k", &only_rpm, T0 + 48_000, "c").unwrap_err();
        assert_eq!(refused.limit, Limit::Rpm(2));
        assert_eq!(refused.retry_after.unwrap().as_secs(), 12);
        // Another key is not affected.
        c.admit("other", &only_rpm, T0 + 48_000, "d").unwrap();
        // The oldest falls out of the minute.
        c.admit("k", &only_rpm, T0 + 60_000, "e").unwrap();
    }

    #[test]
    fn concurrency_is_held_until_released() {
        let c = LocalCounters::default();
        let only = KeyPolicy {
            concurrency: Some(1),
            ..KeyPolicy::default()
        };
        c.admit("k", &only, T0, "a").unwrap();
        let refused = c.admit("k", &only, T0, "b").unwrap_err();
        assert_eq!(refused.limit, Limit::Concurrency(1));
        c.release("k", "a");
        c.admit("k", &only, T0, "c").unwrap();
    }

    #[test]
    fn daily_budgets_reset_at_utc_midnight() {
        let c = LocalCounters::default();
        let l = limits();
        c.admit("k", &l, T0, "a").unwrap();
        c.release("k", "a");
        c.add_tokens("k", T0, 100);
        let refused = c.admit("k", &l, T0 + 1000, "b").unwrap_err();
        assert_eq!(refused.limit, Limit::DailyTokens(100));
        // T0 is 01:00 UTC: 23 hours to midnight.
        assert_eq!(refused.retry_after.unwrap().as_secs(), 23 * 3600 - 1);
        let next_day = T0 + DAY_MS;
        c.admit("k", &l, next_day, "c").unwrap();
        c.release("k", "c");
        c.admit("k", &l, next_day + 60_000, "d").unwrap();
        c.release("k", "d");
        c.admit("k", &l, next_day + 120_000, "e").unwrap();
        c.release("k", "e");
        let refused = c.admit("k", &l, next_day + 180_000, "f").unwrap_err();
        assert_eq!(refused.limit, Limit::DailyRequests(3));
    }
}

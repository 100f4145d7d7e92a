//! Exponential backoff with jitter, and a retry budget bounded by a total wait.
//!
//! The random source is a parameter (a sample in `[0, 1)`, e.g. `rand::random()` at
//! the edge), so tests are deterministic.

use std::time::Duration;

/// How much of each delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The exact exponential delay.
    None,
    /// Uniform in `[0, delay)` (AWS "full jitter").
    Full,
    /// `delay / 2` plus uniform in `[0, delay / 2)`.
    Equal,
}

/// `base · 2^attempt`, capped, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub jitter: Jitter,
}

impl Default for Backoff {
    /// 1 s → 2 s → 4 s → … → 60 s, equal jitter.
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            jitter: Jitter::Equal,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry), without jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay before retry number `attempt`, jittered with `random` in `[0, 1)`
    /// (values outside are clamped).
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let r = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => ceiling.mul_f64(r),
            Jitter::Equal => ceiling / 2 + (ceiling / 2).mul_f64(r),
        }
    }
}

/// Retries of one request, bounded by a total wait (`[routing] max_wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    max_wait: Duration,
    waited: Duration,
    attempts: u32,
}

impl RetryBudget {
    pub fn new(max_wait: Duration) -> RetryBudget {
        RetryBudget {
            max_wait,
            waited: Duration::ZERO,
            attempts: 0,
        }
    }

    /// The next backoff delay, or `None` when the budget is spent. The last delay is
    /// shortened to what remains of the budget.
    pub fn next_backoff(&mut self, backoff: &Backoff, random: f64) -> Option<Duration> {
        let delay = backoff.delay(self.attempts, random);
        let granted = self.spend(delay)?;
        Some(granted)
    }

    /// Asks to wait `delay` (a retry hint from upstream, say). Returns the wait
    /// granted (shortened to what remains), or `None` when nothing remains.
    pub fn spend(&mut self, delay: Duration) -> Option<Duration> {
        let remaining = self.remaining();
        if remaining.is_zero() {
            return None;
        }
        let granted = delay.min(remaining);
        self.waited += granted;
        self.attempts = self.attempts.saturating_add(1);
        Some(granted)
    }

    /// Whether waiting `delay` fits in what remains (without spending it).
    pub fn fits(&self, delay: Duration) -> bool {
        delay <= self.remaining()
    }

    pub fn remaining(&self) -> Duration {
        self.max_wait.saturating_sub(self.waited)
    }

    pub fn waited(&self) -> Duration {
        self.waited
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff {
            jitter: Jitter::None,
            ..Backoff::default()
        };
        let seq: Vec<u64> = (0..9).map(|a| b.delay(a, 0.5).as_secs()).collect();
        assert_eq!(seq, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.delay(u32::MAX, 0.5), secs(60));
    }

    #[test]
    fn jitter_uses_the_injected_sample() {
        let full = Backoff {
            jitter: Jitter::Full,
            ..Backoff::default()
        };
        assert_eq!(full.delay(2, 0.0), Duration::ZERO);
        assert_eq!(full.delay(2, 0.5), secs(2));
        let equal = Backoff::default();
        assert_eq!(equal.delay(2, 0.0), secs(2));
        assert_eq!(equal.delay(2, 0.5), secs(3));
        assert_eq!(equal.delay(2, f64::NAN), secs(2));
        assert_eq!(equal.delay(2, 7.0), secs(4));
    }

    #[test]
    fn budget_bounds_the_total_wait() {
        let b = Backoff {
            jitter: Jitter::None,
            ..Backoff::default()
        };
        let mut budget = RetryBudget::new(secs(10));
        let mut waits = Vec::new();
        while let Some(d) = budget.next_backoff(&b, 0.0) {
            waits.push(d.as_secs());
        }
        assert_eq!(waits, vec![1, 2, 4, 3]);
        assert_eq!(budget.waited(), secs(10));
        assert_eq!(budget.attempts(), 4);
        assert_eq!(budget.spend(secs(1)), None);
    }

    #[test]
    fn hints_spend_the_budget_too() {
        let mut budget = RetryBudget::new(secs(60));
        assert!(budget.fits(secs(60)));
        assert_eq!(budget.spend(secs(45)), Some(secs(45)));
        assert!(!budget.fits(secs(20)));
        assert_eq!(budget.spend(secs(20)), Some(secs(15)));
        assert_eq!(budget.remaining(), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn delay_within_bounds(attempt in 0u32..64, r in 0.0f64..1.0) {
            for jitter in [Jitter::None, Jitter::Full, Jitter::Equal] {
                let b = Backoff { jitter, ..Backoff::default() };
                let d = b.delay(attempt, r);
                prop_assert!(d <= b.ceiling(attempt));
                prop_assert!(d <= secs(60));
                if jitter != Jitter::Full {
                    prop_assert!(d >= b.ceiling(attempt) / 2);
                }
            }
        }

        #[test]
        fn budget_never_overspends(max in 0u64..300, samples in proptest::collection::vec(0.0f64..1.0, 0..50)) {
            let mut budget = RetryBudget::new(secs(max));
            let b = Backoff::default();
            let mut total = Duration::ZERO;
            for r in samples {
                match budget.next_backoff(&b, r) {
                    Some(d) => total += d,
                    None => break,
                }
            }
            prop_assert!(total <= secs(max));
            prop_assert_eq!(total, budget.waited());
        }
    }
}

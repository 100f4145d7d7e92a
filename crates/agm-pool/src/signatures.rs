//! The thinking-signature cache (docs/PROTOCOL.md §4).
//!
//! Every signature the upstream hands out is remembered under the conversation's
//! session id: by its decoded bytes (so standard and URL-safe base64 find the same
//! entry) with the model family that made it, and by the tool call it came with.
//! Translators ask it, through [`SignatureStore`], whether a signature a client sends
//! back may be replayed to the family about to be called, and for the signature of a
//! tool call whose signature the client dropped.
//!
//! Bounded two ways: entries expire after `ttl`, and past `capacity` entries the
//! oldest go first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agm_translate::thinking::{ModelFamily, SeenSignature, SignatureStore, signature_bytes};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Signature {
        session: String,
        bytes: Vec<u8>,
    },
    ToolUse {
        session: String,
        tool_use_id: String,
    },
}

#[derive(Debug, Clone)]
enum Value {
    Family(ModelFamily),
    Signature(String),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    stored_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Insertion order, for eviction; may hold keys already replaced or expired.
    order: VecDeque<(Key, Instant)>,
}

/// Hits and misses of lookups, for the hit-rate metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

impl CacheStats {
    /// Hits over lookups, 0 when nothing was looked up.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

#[derive(Debug)]
pub struct SignatureCache {
    inner: Mutex<Inner>,
    ttl: Duration,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl SignatureCache {
    pub fn new(ttl: Duration, capacity: usize) -> SignatureCache {
        SignatureCache {
            inner: Mutex::new(Inner::default()),
            ttl,
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every mutation is
        // one insert or remove), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers what an upstream answer of `family` handed out in `session`.
    pub fn remember(
        &self,
        session: &str,
        family: ModelFamily,
        seen: &[SeenSignature],
        now: Instant,
    ) {
        if seen.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for s in seen {
            if let Some(bytes) = signature_bytes(&s.signature) {
                let key = Key::Signature {
                    session: session.to_owned(),
                    bytes,
                };
                insert(&mut inner, key, Value::Family(family), now);
            }
            if let Some(id) = &s.tool_use_id {
                let key = Key::ToolUse {
                    session: session.to_owned(),
                    tool_use_id: id.clone(),
                };
                insert(&mut inner, key, Value::Signature(s.signature.clone()), now);
            }
        }
        self.evict(&mut inner, now);
    }

    fn evict(&self, inner: &mut Inner, now: Instant) {
        while let Some((key, stored_at)) = inner.order.front().cloned() {
            let expired = now.saturating_duration_since(stored_at) >= self.ttl;
            if !expired && inner.entries.len() <= self.capacity {
                break;
            }
            inner.order.pop_front();
            // Only remove the entry if this order record is its latest write.
            if inner
                .entries
                .get(&key)
                .is_some_and(|e| e.stored_at == stored_at)
            {
                inner.entries.remove(&key);
            }
        }
    }

    fn lookup(&self, key: &Key, now: Instant) -> Option<Value> {
        let inner = self.lock();
        let found = inner
            .entries
            .get(key)
            .filter(|e| now.saturating_duration_since(e.stored_at) < self.ttl)
            .map(|e| e.value.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// A [`SignatureStore`] view at `now`, to hand to a translator for one request.
    pub fn at(&self, now: Instant) -> CacheView<'_> {
        CacheView { cache: self, now }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.lock().entries.len(),
        }
    }
}

/// One remembered signature as it is saved across a restart: wall-clock times, so
/// that its TTL keeps running while agm is down.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedSignature {
    pub session: String,
    #[serde(flatten)]
    pub entry: SavedEntry,
    /// When it was remembered, Unix milliseconds.
    pub stored_at_ms: i64,
}

/// What one saved entry maps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavedEntry {
    /// A signature (standard base64 of its bytes) and the family that made it.
    Family {
        signature: String,
        family: ModelFamily,
    },
    /// The signature a tool call came with.
    ToolUse {
        tool_use_id: String,
        signature: String,
    },
}

impl SignatureCache {
    /// The live entries, newest first, at most `limit`: what a restart should keep.
    /// `wall_now_ms` is the wall clock at `now`.
    pub fn export(&self, now: Instant, wall_now_ms: i64, limit: usize) -> Vec<SavedSignature> {
        use base64::Engine as _;
        let inner = self.lock();
        let mut live: Vec<(&Key, &Entry)> = inner
            .entries
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.stored_at) < self.ttl)
            .collect();
        live.sort_by_key(|(_, e)| std::cmp::Reverse(e.stored_at));
        live.truncate(limit);
        live.into_iter()
            .filter_map(|(key, e)| {
                let age = i64::try_from(now.saturating_duration_since(e.stored_at).as_millis())
                    .unwrap_or(i64::MAX);
                let (session, entry) = match (key, &e.value) {
                    (Key::Signature { session, bytes }, Value::Family(family)) => (
                        session,
                        SavedEntry::Family {
                            signature: base64::engine::general_purpose::STANDARD.encode(bytes),
                            family: *family,
                        },
                    ),
                    (
                        Key::ToolUse {
                            session,
                            tool_use_id,
                        },
                        Value::Signature(signature),
                    ) => (
                        session,
                        SavedEntry::ToolUse {
                            tool_use_id: tool_use_id.clone(),
                            signature: signature.clone(),
                        },
                    ),
                    _ => return None,
                };
                Some(SavedSignature {
                    session: session.clone(),
                    entry,
                    stored_at_ms: wall_now_ms.saturating_sub(age),
                })
            })
            .collect()
    }

    /// Takes saved entries back (at start), each with the age it had: those past the
    /// TTL are left out. Returns how many were taken.
    pub fn import(&self, saved: &[SavedSignature], now: Instant, wall_now_ms: i64) -> usize {
        let mut inner = self.lock();
        let mut taken = 0;
        // Oldest first, so the eviction order stays right.
        let mut saved: Vec<&SavedSignature> = saved.iter().collect();
        saved.sort_by_key(|s| s.stored_at_ms);
        for s in saved {
            let age = Duration::from_millis(
                u64::try_from(wall_now_ms.saturating_sub(s.stored_at_ms)).unwrap_or(0),
            );
            let Some(stored_at) = now.checked_sub(age).filter(|_| age < self.ttl) else {
                continue;
            };
            let (key, value) = match &s.entry {
                SavedEntry::Family { signature, family } => {
                    let Some(bytes) = signature_bytes(signature) else {
                        continue;
                    };
                    let key = Key::Signature {
                        session: s.session.clone(),
                        bytes,
                    };
                    (key, Value::Family(*family))
                }
                SavedEntry::ToolUse {
                    tool_use_id,
                    signature,
                } => {
                    let key = Key::ToolUse {
                        session: s.session.clone(),
                        tool_use_id: tool_use_id.clone(),
                    };
                    (key, Value::Signature(signature.clone()))
                }
            };
            insert(&mut inner, key, value, stored_at);
            taken += 1;
        }
        self.evict(&mut inner, now);
        taken
    }
}

fn insert(inner: &mut Inner, key: Key, value: Value, now: Instant) {
    inner.order.push_back((key.clone(), now));
    inner.entries.insert(
        key,
        Entry {
            value,
            stored_at: now,
        },
    );
}

/// The cache as seen at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CacheView<'a> {
    cache: &'a SignatureCache,
    now: Instant,
}

impl SignatureStore for CacheView<'_> {
    fn family_of(&self, session_id: &str, signature: &str) -> Option<ModelFamily> {
        let bytes = signature_bytes(signature)?;
        let key = Key::Signature {
            session: session_id.to_owned(),
            bytes,
        };
        match self.cache.lookup(&key, self.now)? {
            Value::Family(f) => Some(f),
            Value::Signature(_) => None,
        }
    }

    fn for_tool_use(&self, session_id: &str, tool_use_id: &str) -> Option<String> {
        let key = Key::ToolUse {
            session: session_id.to_owned(),
            tool_use_id: tool_use_id.to_owned(),
        };
        match self.cache.lookup(&key, self.now)? {
            Value::Signature(s) => Some(s),
            Value::Family(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_entries_come_back_with_the_age_they_had() {
        let cache = SignatureCache::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        cache.remember("s1", ModelFamily::Claude, &[seen(SIG, Some("toolu_1"))], t0);
        let later = t0 + Duration::from_secs(10);
        cache.remember("s2", ModelFamily::Gemini, &[seen("AAECAw==", None)], later);
        // Saved at wall clock 1,000,000 ms (10 s after the first entry).
        let saved = cache.export(later, 1_000_000, 100);
        assert_eq!(saved.len(), 3);
        assert_eq!(saved[0].session, "s2", "newest first");
        let json = serde_json::to_string(&saved).unwrap();
        let back: Vec<SavedSignature> = serde_json::from_str(&json).unwrap();

        // A new process, 30 s of wall clock later: s1's entries are 40 s old, s2's 30 s.
        let fresh = SignatureCache::new(Duration::from_secs(60), 100);
        let start = Instant::now();
        assert_eq!(fresh.import(&back, start, 1_030_000), 3);
        let view = fresh.at(start);
        assert_eq!(
            view.family_of("s1", SIG_URL_SAFE),
            Some(ModelFamily::Claude)
        );
        assert_eq!(view.for_tool_use("s1", "toolu_1").as_deref(), Some(SIG));
        // 25 s on, s1's entries pass the 60 s TTL; s2's do not.
        let view = fresh.at(start + Duration::from_secs(25));
        assert_eq!(view.family_of("s1", SIG), None);
        assert_eq!(view.family_of("s2", "AAECAw=="), Some(ModelFamily::Gemini));
        // Entries past the TTL when agm comes back are not taken at all.
        assert_eq!(
            SignatureCache::new(Duration::from_secs(60), 100).import(&back, start, 1_100_000),
            0
        );
        // The export is bounded, newest kept.
        assert_eq!(cache.export(later, 1_000_000, 1).len(), 1);
    }

    const SIG: &str = "q83vASNFZ4mrze8BI0VniQ=="; // standard base64 with padding
    const SIG_URL_SAFE: &str = "q83vASNFZ4mrze8BI0VniQ";

    fn seen(signature: &str, tool: Option<&str>) -> SeenSignature {
        SeenSignature {
            signature: signature.into(),
            tool_use_id: tool.map(Into::into),
        }
    }

    #[test]
    fn remembers_family_by_bytes_and_session() {
        let cache = SignatureCache::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        cache.remember("s1", ModelFamily::Claude, &[seen(SIG, None)], t0);
        let view = cache.at(t0);
        assert_eq!(view.family_of("s1", SIG), Some(ModelFamily::Claude));
        assert_eq!(
            view.family_of("s1", SIG_URL_SAFE),
            Some(ModelFamily::Claude),
            "any base64 alphabet"
        );
        assert_eq!(view.family_of("s2", SIG), None, "another conversation");
        assert_eq!(view.family_of("s1", "not base64!"), None);
    }

    #[test]
    fn restores_dropped_tool_signatures() {
        let cache = SignatureCache::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        cache.remember("s", ModelFamily::Gemini, &[seen(SIG, Some("toolu_1"))], t0);
        assert_eq!(
            cache.at(t0).for_tool_use("s", "toolu_1").as_deref(),
            Some(SIG)
        );
        assert_eq!(cache.at(t0).for_tool_use("s", "toolu_2"), None);
    }

    #[test]
    fn entries_expire() {
        let cache = SignatureCache::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        cache.remember("s", ModelFamily::Claude, &[seen(SIG, Some("t"))], t0);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(cache.at(later).family_of("s", SIG), None);
        assert_eq!(cache.at(later).for_tool_use("s", "t"), None);
        // The next write sweeps them out.
        cache.remember("s", ModelFamily::Claude, &[seen("AAAA", None)], later);
        assert_eq!(cache.stats().entries, 1);
    }

    #[test]
    fn bounded_by_capacity_oldest_first() {
        let cache = SignatureCache::new(Duration::from_secs(600), 3);
        let t0 = Instant::now();
        for i in 0..5u8 {
            let sig = b64(&[i; 8]);
            cache.remember(
                "s",
                ModelFamily::Claude,
                &[seen(&sig, None)],
                t0 + Duration::from_secs(u64::from(i)),
            );
        }
        let now = t0 + Duration::from_secs(5);
        assert_eq!(cache.stats().entries, 3);
        assert_eq!(cache.at(now).family_of("s", &b64(&[0; 8])), None);
        assert_eq!(
            cache.at(now).family_of("s", &b64(&[4; 8])),
            Some(ModelFamily::Claude)
        );
    }

    #[test]
    fn rewrite_keeps_the_entry_alive() {
        let cache = SignatureCache::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        cache.remember("s", ModelFamily::Claude, &[seen(SIG, None)], t0);
        cache.remember(
            "s",
            ModelFamily::Claude,
            &[seen(SIG, None)],
            t0 + Duration::from_secs(8),
        );
        let now = t0 + Duration::from_secs(12);
        cache.remember("s", ModelFamily::Claude, &[seen("AAAA", None)], now);
        assert_eq!(cache.at(now).family_of("s", SIG), Some(ModelFamily::Claude));
    }

    #[test]
    fn hit_rate_counts_lookups() {
        let cache = SignatureCache::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        cache.remember("s", ModelFamily::Claude, &[seen(SIG, None)], t0);
        let view = cache.at(t0);
        assert!(view.family_of("s", SIG).is_some());
        assert!(view.family_of("s", SIG).is_some());
        assert!(view.family_of("s", "AAAA").is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
        assert!((stats.hit_rate() - 2.0 / 3.0).abs() < 1e-9);
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

//! The discovered project of each account, kept for a while (default 1 h) so that
//! discovery runs once per account and TTL, not once per request. Time is a
//! parameter: the caller passes `now`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Projects by account id, each valid for the cache's TTL from when it was put.
/// The server invalidates an account's entry when its token is refreshed and when
/// Google answers it a 403.
#[derive(Debug, Clone)]
pub struct ProjectCache {
    ttl: Duration,
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    project_id: String,
    found_at: Instant,
}

impl Default for ProjectCache {
    fn default() -> Self {
        ProjectCache::new(ProjectCache::DEFAULT_TTL)
    }
}

impl ProjectCache {
    /// How long a discovered project is trusted by default.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    pub fn new(ttl: Duration) -> ProjectCache {
        ProjectCache {
            ttl,
            entries: HashMap::new(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The account's project, if it was put less than the TTL before `now`.
    pub fn get(&self, account_id: &str, now: Instant) -> Option<String> {
        let entry = self.entries.get(account_id)?;
        (now.saturating_duration_since(entry.found_at) < self.ttl).then(|| entry.project_id.clone())
    }

    /// Remembers the account's project as found at `now`.
    pub fn put(&mut self, account_id: &str, project_id: &str, now: Instant) {
        self.entries.insert(
            account_id.to_owned(),
            Entry {
                project_id: project_id.to_owned(),
                found_at: now,
            },
        );
    }

    /// Forgets the account's project (token refreshed, or a 403). True if there was one.
    pub fn invalidate(&mut self, account_id: &str) -> bool {
        self.entries.remove(account_id).is_some()
    }

    /// Drops every entry expired at `now`.
    pub fn purge_expired(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.entries
            .retain(|_, entry| now.saturating_duration_since(entry.found_at) < ttl);
    }

    /// How many entries are held, expired ones included until purged.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_for_the_ttl() {
        let t0 = Instant::now();
        let mut cache = ProjectCache::default();
        assert_eq!(cache.ttl(), Duration::from_secs(3600));
        assert_eq!(cache.get("alice", t0), None);
        cache.put("alice", "proj-a", t0);
        assert_eq!(cache.get("alice", t0).as_deref(), Some("proj-a"));
        let almost = t0 + Duration::from_secs(3599);
        assert_eq!(cache.get("alice", almost).as_deref(), Some("proj-a"));
        let expired = t0 + Duration::from_secs(3600);
        assert_eq!(cache.get("alice", expired), None);
        // A clock that reads earlier than the put still finds the entry.
        cache.put("bob", "proj-b", almost);
        assert_eq!(cache.get("bob", t0).as_deref(), Some("proj-b"));
        cache.purge_expired(expired);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("bob", expired).as_deref(), Some("proj-b"));
    }

    #[test]
    fn put_renews_and_invalidate_forgets() {
        let t0 = Instant::now();
        let mut cache = ProjectCache::new(Duration::from_secs(60));
        cache.put("alice", "proj-a", t0);
        cache.put("alice", "proj-a2", t0 + Duration::from_secs(50));
        assert_eq!(
            cache.get("alice", t0 + Duration::from_secs(100)).as_deref(),
            Some("proj-a2")
        );
        cache.put("bob", "proj-b", t0);
        assert!(cache.invalidate("alice"));
        assert!(!cache.invalidate("alice"));
        assert_eq!(cache.get("alice", t0), None);
        assert_eq!(cache.get("bob", t0).as_deref(), Some("proj-b"));
        assert!(!cache.is_empty());
    }
}

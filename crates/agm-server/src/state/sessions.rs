//! Conversations that survive a restart: the sticky sessions (conversation → account,
//! so a conversation keeps its account and Google's prompt cache) and the thinking
//! signatures handed out, saved with wall-clock times so that their TTLs keep running
//! while agm is down. Written every [`SAVE_EVERY`] and at shutdown; read at start.

use std::time::{Duration, Instant};

use agm_pool::selection::SavedSession;
use agm_pool::signatures::SavedSignature;

use super::{StateError, keys};
use crate::app::AppState;

/// How often a running server saves them (a crash loses at most this much).
pub const SAVE_EVERY: Duration = Duration::from_secs(60);
/// The most sticky sessions kept across a restart (the most recently used).
pub const MAX_SESSIONS: usize = 10_000;
/// The most signature entries kept across a restart (the newest): each is up to a few
/// kilobytes, and a conversation needs only its latest.
pub const MAX_SIGNATURES: usize = 2_000;

fn wall_now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// What is saved, for tests and `agm doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub sessions: usize,
    pub signatures: usize,
}

/// Saves the live sticky sessions and signatures.
pub async fn save(state: &AppState) -> Result<Counts, StateError> {
    let (now, wall) = (Instant::now(), wall_now_ms());
    let sessions: Vec<SavedSession> =
        state
            .accounts
            .selector
            .export_sessions(now, wall, MAX_SESSIONS);
    let signatures: Vec<SavedSignature> = state.signatures.export(now, wall, MAX_SIGNATURES);
    state.shared.put(&keys::STICKY_SESSIONS, &sessions).await?;
    state.shared.put(&keys::SIGNATURES, &signatures).await?;
    Ok(Counts {
        sessions: sessions.len(),
        signatures: signatures.len(),
    })
}

/// Takes the saved ones back (at start); those whose TTL ran out meanwhile are left.
pub async fn restore(state: &AppState) -> Result<Counts, StateError> {
    let (now, wall) = (Instant::now(), wall_now_ms());
    let sessions = state
        .shared
        .get(&keys::STICKY_SESSIONS)
        .await?
        .unwrap_or_default();
    let signatures = state
        .shared
        .get(&keys::SIGNATURES)
        .await?
        .unwrap_or_default();
    Ok(Counts {
        sessions: state
            .accounts
            .selector
            .import_sessions(&sessions, now, wall),
        signatures: state.signatures.import(&signatures, now, wall),
    })
}

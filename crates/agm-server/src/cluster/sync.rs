//! What a replica does with the cluster: follows the event channel and applies each
//! event to its in-process state, holds or waits for the leader lease, and catches up
//! whenever Redis answers again. Also the publishing side the request path calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agm_pool::breaker::{BreakerKey, CircuitState, Transition};
use agm_pool::cooldown::CooldownReason;
use agm_translate::thinking::{ModelFamily, SeenSignature};
use futures_util::StreamExt;

use super::{Cluster, Envelope, Event, SharedCooldown, instant_of, ms_of};
use crate::app::{AppState, SharedState};

/// How often a replica without Redis tries again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How long connecting the pub/sub connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Follows the cluster for as long as the server runs: (re)connects, subscribes to the
/// event channel, catches up, applies every event of the other replicas.
pub async fn follow(state: SharedState, cluster: Arc<Cluster>) {
    loop {
        if cluster.connect().await {
            listen(&state, &cluster).await;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

async fn listen(state: &AppState, cluster: &Cluster) {
    let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, cluster.client.get_async_pubsub()).await;
    let mut pubsub = match pubsub {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return cluster.mark_down(&e),
        Err(_) => return cluster.mark_down(&"connecting the event channel timed out"),
    };
    if let Err(e) = pubsub.subscribe(cluster.channel()).await {
        return cluster.mark_down(&e);
    }
    // Subscribed first: nothing published from here on is missed by the catch-up.
    cluster.mark_up();
    catch_up(state, cluster).await;
    let mut messages = pubsub.into_on_message();
    let mut tick = tokio::time::interval(RETRY_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    cluster.mark_down(&"the event channel closed");
                    return;
                };
                let Ok(text) = message.get_payload::<String>() else { continue };
                match serde_json::from_str::<Envelope>(&text) {
                    Ok(envelope) if envelope.from != cluster.replica() => {
                        apply(state, envelope.event).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "an unreadable cluster event; ignored"),
                }
            }
            _ = tick.tick() => {
                // A command failed meanwhile (a timeout), yet the channel lives: back
                // up as soon as Redis answers a PING, with a catch-up.
                if !cluster.is_up() && cluster.connect().await && cluster.mark_up() {
                    catch_up(state, cluster).await;
                }
            }
        }
    }
}

/// Redis answers (again): this replica's running cooldowns go to the others, theirs
/// come here, and safe mode is read at once.
async fn catch_up(state: &AppState, cluster: &Cluster) {
    let now = Instant::now();
    let mine = state.accounts.cooldowns.list(now);
    for c in &mine {
        cluster
            .share_cooldown(SharedCooldown {
                account: c.account.clone(),
                model: c.model.clone(),
                until_ms: ms_of(c.until),
                reason: c.reason,
            })
            .await;
    }
    let theirs = cluster.cooldowns().await.unwrap_or_default();
    for c in &theirs {
        adopt_cooldown(state, c);
    }
    crate::ops::jobs::sync_safe_mode(state).await;
    tracing::info!(
        published = mine.len(),
        read = theirs.len(),
        "caught up with the cluster's cooldowns"
    );
}

fn adopt_cooldown(state: &AppState, c: &SharedCooldown) {
    let Some(until) = instant_of(c.until_ms) else {
        return;
    };
    let cooldowns = &state.accounts.cooldowns;
    if cooldowns
        .until(&c.account, &c.model, Instant::now())
        .is_none_or(|mine| mine < until)
    {
        cooldowns.set(&c.account, &c.model, until, c.reason);
    }
}

/// Applies another replica's `event` here.
async fn apply(state: &AppState, event: Event) {
    match event {
        Event::Cooldown(c) => adopt_cooldown(state, &c),
        Event::CooldownsCleared { account } => match account {
            Some(account) => {
                state.accounts.cooldowns.clear_account(&account);
            }
            None => state.accounts.cooldowns.clear_all(),
        },
        Event::Breaker {
            endpoint,
            account,
            open_ms,
            reopen_count,
        } => {
            let key = BreakerKey::new(endpoint.clone(), account.clone());
            let now = Instant::now();
            let to = match open_ms {
                Some(ms) => CircuitState::Open {
                    until: now + Duration::from_millis(ms),
                    reopen_count,
                },
                None => CircuitState::Closed {
                    consecutive_failures: 0,
                },
            };
            state.accounts.breakers.adopt(&key, to, now);
            metrics::gauge!("circuit_breaker_state", "endpoint" => endpoint, "account" => account)
                .set(crate::routing::breaker::state_value(&to));
        }
        Event::Signatures {
            session,
            family,
            signatures,
        } => {
            let seen: Vec<SeenSignature> = signatures
                .into_iter()
                .map(|(signature, tool_use_id)| SeenSignature {
                    signature,
                    tool_use_id,
                })
                .collect();
            state
                .signatures
                .remember(&session, family, &seen, Instant::now());
        }
        Event::SafeMode => crate::ops::jobs::sync_safe_mode(state).await,
        Event::Quota { account } => {
            if let Ok(Some(snapshot)) = crate::state::quota::load(&state.shared, &account).await {
                state
                    .accounts
                    .set_quota(&account, crate::state::quota::fractions(&snapshot))
                    .await;
                state.accounts.catalogue.learn(&account, &snapshot);
            }
        }
    }
}

/// Holds the leader lease while this replica can, renewing it every
/// [`super::LEADER_RENEW_EVERY`]; another replica takes it within
/// [`super::LEADER_TTL`] of this one dying.
pub async fn lead(cluster: Arc<Cluster>) {
    loop {
        cluster.hold_leadership().await;
        tokio::time::sleep(super::LEADER_RENEW_EVERY).await;
    }
}

/// A cooldown this replica just set: stored in Redis and announced, awaited so that
/// the others know before this request's answer goes out.
pub async fn share_cooldown(
    state: &AppState,
    account: &str,
    model: &str,
    until: Instant,
    reason: CooldownReason,
) {
    if let Some(cluster) = &state.cluster {
        cluster
            .share_cooldown(SharedCooldown {
                account: account.to_owned(),
                model: model.to_owned(),
                until_ms: ms_of(until),
                reason,
            })
            .await;
    }
}

/// Remembers the signatures an answer handed out here, and announces them to every
/// replica on the side (a stream's end is synchronous).
pub fn remember_signatures(
    state: &Arc<AppState>,
    session: &str,
    family: ModelFamily,
    seen: &[SeenSignature],
) {
    if let Some((cluster, event)) = remember_and_announce(state, session, family, seen)
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        handle.spawn(async move {
            cluster
                .share_signatures(event, crate::app::SIGNATURE_TTL)
                .await;
        });
    }
}

/// [`remember_signatures`], the announcement awaited: every replica knows them before
/// the answer goes out, so the next turn may go anywhere.
pub async fn remember_signatures_now(
    state: &Arc<AppState>,
    session: &str,
    family: ModelFamily,
    seen: &[SeenSignature],
) {
    if let Some((cluster, event)) = remember_and_announce(state, session, family, seen) {
        cluster
            .share_signatures(event, crate::app::SIGNATURE_TTL)
            .await;
    }
}

fn remember_and_announce(
    state: &Arc<AppState>,
    session: &str,
    family: ModelFamily,
    seen: &[SeenSignature],
) -> Option<(Arc<Cluster>, Event)> {
    state
        .signatures
        .remember(session, family, seen, Instant::now());
    let cluster = state.cluster.clone().filter(|c| c.is_up())?;
    if seen.is_empty() {
        return None;
    }
    let event = Event::Signatures {
        session: session.to_owned(),
        family,
        signatures: seen
            .iter()
            .map(|s| (s.signature.clone(), s.tool_use_id.clone()))
            .collect(),
    };
    Some((cluster, event))
}

/// A translation met a thinking signature this replica does not know: takes the
/// conversation's signatures from Redis (a replica that started after they were
/// announced, or missed them while degraded). True when some were taken.
pub async fn recall_signatures(state: &AppState, session: &str) -> bool {
    let Some(cluster) = state.cluster.as_ref().filter(|c| c.is_up()) else {
        return false;
    };
    let stored = cluster.signatures(session).await.unwrap_or_default();
    let now = Instant::now();
    for (signature, family, tool_use_id) in &stored {
        let seen = [SeenSignature {
            signature: signature.clone(),
            tool_use_id: tool_use_id.clone(),
        }];
        state.signatures.remember(session, *family, &seen, now);
    }
    !stored.is_empty()
}

/// A signature store that notes whether a lookup found nothing.
pub struct MissTracking<'a, S> {
    pub inner: &'a S,
    pub missed: std::cell::Cell<bool>,
}

impl<S: agm_translate::thinking::SignatureStore> agm_translate::thinking::SignatureStore
    for MissTracking<'_, S>
{
    fn family_of(&self, session_id: &str, signature: &str) -> Option<ModelFamily> {
        let found = self.inner.family_of(session_id, signature);
        if found.is_none() {
            self.missed.set(true);
        }
        found
    }

    fn for_tool_use(&self, session_id: &str, tool_use_id: &str) -> Option<String> {
        let found = self.inner.for_tool_use(session_id, tool_use_id);
        if found.is_none() {
            self.missed.set(true);
        }
        found
    }
}

/// Announces a circuit-breaker transition (on the side: the gate is synchronous).
pub fn share_breaker(cluster: Option<&Arc<Cluster>>, transition: &Transition) {
    let Some(cluster) = cluster.filter(|c| c.is_up()).cloned() else {
        return;
    };
    let (open_ms, reopen_count) = match transition.to {
        CircuitState::Open {
            until,
            reopen_count,
        } => (
            Some(
                u64::try_from(until.saturating_duration_since(transition.at).as_millis())
                    .unwrap_or(u64::MAX),
            ),
            reopen_count,
        ),
        CircuitState::Closed { .. } => (None, 0),
        // Half-open follows from an open circuit's end on every replica by itself.
        CircuitState::HalfOpen { .. } => return,
    };
    let event = Event::Breaker {
        endpoint: transition.key.endpoint.clone(),
        account: transition.key.account.clone(),
        open_ms,
        reopen_count,
    };
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move { cluster.publish(event).await });
    }
}

//! The request log: one row per client API request (route, model, account id, client
//! key id, status, attempts, latency, overhead, the tokens Google counted; never a
//! prompt, an answer or a secret), written when the answer ends and handed from the
//! request path to a channel and written to the store in batches by a background
//! task, so a request never waits on the database. Pruned by
//! `[logging] request_log_retention` (`jobs::housekeeping`).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agm_wire::gemini::GenerateContentResponse;

use agm_store::{RequestLogEntry, Store};
use tokio::sync::{Mutex, mpsc};

/// Entries waiting to be written; past this the newest are dropped (and counted).
const QUEUE: usize = 8192;
/// How long the writer gathers entries before writing them as one batch.
const GATHER: Duration = Duration::from_millis(250);
/// The most entries written in one transaction.
const BATCH: usize = 2048;

/// The sending side lives in `AppState`; [`RequestLog::run`] drains it.
pub struct RequestLog {
    tx: mpsc::Sender<RequestLogEntry>,
    rx: Mutex<mpsc::Receiver<RequestLogEntry>>,
    /// The calls of the newest requests (the console's detail view).
    pub traces: Traces,
}

impl Default for RequestLog {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        RequestLog {
            tx,
            rx: Mutex::new(rx),
            traces: Traces::default(),
        }
    }
}

impl RequestLog {
    /// Queues an entry and keeps its calls for the console; never waits.
    pub fn record_with_calls(&self, entry: RequestLogEntry, calls: Vec<Call>) {
        self.traces.keep(&entry, calls);
        self.record(entry);
    }

    /// Queues an entry; never waits.
    pub fn record(&self, entry: RequestLogEntry) {
        if self.tx.try_send(entry).is_err() {
            metrics::counter!("agm_request_log_dropped_total").increment(1);
        }
    }

    /// Writes queued entries in batches until the task is dropped.
    pub async fn run(&self, store: Store) {
        let mut rx = self.rx.lock().await;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
            tokio::time::sleep(GATHER).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(entry) => batch.push(entry),
                    Err(_) => break,
                }
            }
            write(&store, &mut batch).await;
        }
    }

    /// Writes what is still queued (at shutdown, after the writer task ended). Gives up
    /// after a second if another writer still holds the queue (two servers on one
    /// state, in tests): that writer writes them.
    pub async fn flush(&self, store: &Store) {
        let Ok(mut rx) = tokio::time::timeout(Duration::from_secs(1), self.rx.lock()).await else {
            return;
        };
        let mut batch = Vec::new();
        while let Ok(entry) = rx.try_recv() {
            batch.push(entry);
        }
        write(store, &mut batch).await;
    }
}

async fn write(store: &Store, batch: &mut Vec<RequestLogEntry>) {
    let n = batch.len();
    if n == 0 {
        return;
    }
    if let Err(e) = store.append_request_logs(std::mem::take(batch)).await {
        metrics::counter!("agm_request_log_dropped_total").increment(n as u64);
        tracing::warn!(error = %e, entries = n, "could not write the request log");
    }
}

/// What the request path learns of a request on its way: set where it is known,
/// read by `telemetry::track` when the response is ready.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    pub client_model: Option<String>,
    pub upstream_model: Option<String>,
    pub account_id: Option<String>,
    pub attempts: u32,
    /// How context scaling shrank the upstream request, if it did.
    pub context_scaled: Option<String>,
    /// The store client key that sent it.
    pub key: Option<Arc<agm_store::ClientKey>>,
    /// The tokens of the answer, and what runs once it is completely sent.
    pub ending: Arc<Ending>,
    /// Each upstream call, in order (at most [`MAX_CALLS`]): the console's detail view.
    pub calls: Vec<Call>,
    /// Time waited since the last call (a back-off, a cooldown), given to the next.
    waited: Duration,
}

/// The most calls a request's trace keeps (the retry budget is far below).
pub const MAX_CALLS: usize = 32;

/// One upstream call of a request: on which account, after how long a wait, and how
/// it failed (never a prompt, an answer or a token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Call {
    /// The account asked; `None` for the official Gemini API.
    pub account_id: Option<String>,
    /// How long agm waited before this call (back-off, a rate limit's delay), in ms.
    pub waited_ms: u64,
    /// Why it failed (`RateLimited`, `ServerError`, …); `None` when it answered.
    pub error_class: Option<String>,
}

/// Tokens as Google counts them in `usageMetadata`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// `promptTokenCount`.
    pub input: u64,
    /// `candidatesTokenCount + thoughtsTokenCount` (thinking is billed as output).
    pub output: u64,
}

impl Tokens {
    pub fn total(self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

type EndHook = Box<dyn FnOnce(Tokens) + Send>;

/// The end of a request: the tokens Google reported for its answer, and the hooks run
/// once the answer is completely sent (the request-log row, the key's token budget, its
/// concurrency lease). Shared by the request path and, for a stream, the stream's
/// body: the hooks run when the last holder lets go, so a streamed answer's row is
/// written when the stream ends (or the client goes away), with its tokens.
#[derive(Default)]
pub struct Ending {
    input: AtomicU64,
    output: AtomicU64,
    hooks: std::sync::Mutex<Vec<EndHook>>,
}

impl std::fmt::Debug for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ending")
            .field("tokens", &self.tokens())
            .finish_non_exhaustive()
    }
}

impl Ending {
    /// A response (or stream chunk) from Google: its `usageMetadata`, when it has one,
    /// is the answer's usage so far (Google's counts are cumulative).
    pub fn observe(&self, response: &GenerateContentResponse) {
        if let Some(usage) = &response.usage_metadata {
            self.input
                .store(usage.prompt_token_count, Ordering::Relaxed);
            self.output.store(
                usage
                    .candidates_token_count
                    .saturating_add(usage.thoughts_token_count),
                Ordering::Relaxed,
            );
        }
    }

    pub fn tokens(&self) -> Tokens {
        Tokens {
            input: self.input.load(Ordering::Relaxed),
            output: self.output.load(Ordering::Relaxed),
        }
    }

    /// Runs `hook` with the tokens once the answer is completely sent.
    pub fn on_end(&self, hook: impl FnOnce(Tokens) + Send + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(hook));
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        let tokens = self.tokens();
        let hooks = std::mem::take(
            self.hooks
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for hook in hooks {
            hook(tokens);
        }
    }
}

/// The current request's [`Ending`] (a stream's body holds it until the stream ends).
pub fn ending() -> Option<Arc<Ending>> {
    FACTS.try_with(|f| Arc::clone(&f.borrow().ending)).ok()
}

/// Google's answer (or a chunk of it) to the current request: its usage counts.
pub fn note_usage(response: &GenerateContentResponse) {
    let _ = FACTS.try_with(|f| f.borrow().ending.observe(response));
}

/// The store client key the current request came with.
pub fn note_key(key: Arc<agm_store::ClientKey>) {
    let _ = FACTS.try_with(|f| f.borrow_mut().key = Some(key));
}

/// The store client key of the current request, if it came with one.
pub fn current_key() -> Option<Arc<agm_store::ClientKey>> {
    FACTS.try_with(|f| f.borrow().key.clone()).ok().flatten()
}

tokio::task_local! {
    static FACTS: RefCell<Facts>;
}

/// Runs `work` with a fresh set of facts and returns them with its output.
pub async fn with_facts<F: Future>(work: F) -> (F::Output, Facts) {
    FACTS
        .scope(RefCell::new(Facts::default()), async move {
            let out = work.await;
            (out, FACTS.with(|f| f.borrow().clone()))
        })
        .await
}

/// The model the client named and the one it goes to upstream.
pub fn note_models(client: &str, upstream: &str) {
    let _ = FACTS.try_with(|f| {
        let mut f = f.borrow_mut();
        f.client_model = Some(client.to_owned());
        f.upstream_model = Some(upstream.to_owned());
    });
}

/// Context scaling shrank the upstream request (`standard; cut=12345 tokens`).
pub fn note_context_scaled(how: &str) {
    let _ = FACTS.try_with(|f| f.borrow_mut().context_scaled = Some(how.to_owned()));
}

/// The account of the current request's last upstream call, if any.
pub fn last_account() -> Option<String> {
    FACTS
        .try_with(|f| f.borrow().account_id.clone())
        .ok()
        .flatten()
}

/// One upstream call, on `account_id` (`None` for the official API).
pub fn note_attempt(account_id: Option<&str>) {
    let _ = FACTS.try_with(|f| {
        let mut f = f.borrow_mut();
        f.attempts = f.attempts.saturating_add(1);
        f.account_id = account_id.map(str::to_owned);
        let waited = std::mem::take(&mut f.waited);
        if f.calls.len() < MAX_CALLS {
            f.calls.push(Call {
                account_id: account_id.map(str::to_owned),
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                error_class: None,
            });
        }
    });
}

/// The last upstream call failed with `class`.
pub fn note_failure(class: &agm_google::ErrorClass) {
    let _ = FACTS.try_with(|f| {
        if let Some(call) = f.borrow_mut().calls.last_mut() {
            call.error_class = Some(class_name(class));
        }
    });
}

/// agm waited `wait` before its next call.
pub fn note_wait(wait: Duration) {
    let _ = FACTS.try_with(|f| {
        let mut f = f.borrow_mut();
        f.waited = f.waited.saturating_add(wait);
    });
}

/// An error class's variant name, without its fields (`RateLimited`).
fn class_name(class: &agm_google::ErrorClass) -> String {
    let debug = format!("{class:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The calls of the newest logged requests, kept in memory for the console's detail
/// view (the request log's row says how many calls; this says which accounts and
/// waits). Found by the row's time, route, model, status and latency.
#[derive(Default)]
pub struct Traces {
    recent: std::sync::Mutex<std::collections::VecDeque<(TraceKey, Vec<Call>)>>,
}

/// How many requests' calls [`Traces`] keeps.
pub const TRACES_KEPT: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
struct TraceKey {
    at_ms: i128,
    route: String,
    client_model: String,
    status: u16,
    latency_ms: u64,
}

impl TraceKey {
    fn of(entry: &RequestLogEntry) -> TraceKey {
        TraceKey {
            at_ms: entry.at.unix_timestamp_nanos() / 1_000_000,
            route: entry.route.clone(),
            client_model: entry.client_model.clone(),
            status: entry.status,
            latency_ms: entry.latency_ms,
        }
    }
}

impl Traces {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(TraceKey, Vec<Call>)>> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps the calls of a request about to be logged as `entry`.
    pub fn keep(&self, entry: &RequestLogEntry, calls: Vec<Call>) {
        let mut recent = self.lock();
        if recent.len() >= TRACES_KEPT {
            recent.pop_front();
        }
        recent.push_back((TraceKey::of(entry), calls));
    }

    /// The calls of the logged request `entry`, when they are still kept and no other
    /// request looks the same.
    pub fn find(&self, entry: &RequestLogEntry) -> Option<Vec<Call>> {
        let key = TraceKey::of(entry);
        let recent = self.lock();
        let mut found = recent.iter().filter(|(k, _)| *k == key);
        let first = found.next()?;
        found.next().is_none().then(|| first.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn facts_belong_to_their_request() {
        let ((), facts) = with_facts(async {
            note_models("claude-sonnet-4-5", "claude-sonnet-4-5");
            note_attempt(Some("0a1b2c3d"));
            note_attempt(Some("4e5f6a7b"));
            note_context_scaled("standard; cut=10 tokens");
        })
        .await;
        assert_eq!(facts.attempts, 2);
        assert_eq!(facts.account_id.as_deref(), Some("4e5f6a7b"));
        assert_eq!(facts.calls.len(), 2);
        assert_eq!(facts.client_model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(
            facts.context_scaled.as_deref(),
            Some("standard; cut=10 tokens")
        );
        // Outside a request: nothing to note, and no panic.
        note_attempt(None);
    }

    #[tokio::test]
    async fn the_ending_runs_its_hooks_with_the_last_usage_when_the_last_holder_goes() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = {
            let seen = Arc::clone(&seen);
            let ((), facts) = with_facts(async move {
                note_key(Arc::new(agm_store::ClientKey {
                    id: "0a1b2c3d".into(),
                    name: "ci".into(),
                    prefix: "agm-abcdef".into(),
                    created_at: time::OffsetDateTime::UNIX_EPOCH,
                    last_used_at: None,
                    revoked_at: None,
                    policy: agm_store::KeyPolicy::default(),
                }));
                let usage = |p: u64, c: u64, t: u64| GenerateContentResponse {
                    usage_metadata: Some(agm_wire::gemini::UsageMetadata {
                        prompt_token_count: p,
                        candidates_token_count: c,
                        thoughts_token_count: t,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                note_usage(&usage(10, 1, 0));
                note_usage(&GenerateContentResponse::default());
                note_usage(&usage(12, 5, 3));
                ending()
                    .unwrap()
                    .on_end(move |tokens| seen.lock().unwrap().push(tokens));
            })
            .await;
            assert_eq!(facts.key.as_ref().unwrap().name, "ci");
            // The stream's body keeps it alive past the handler.
            Arc::clone(&facts.ending)
        };
        assert!(seen.lock().unwrap().is_empty(), "still held");
        drop(held);
        assert_eq!(
            *seen.lock().unwrap(),
            [Tokens {
                input: 12,
                output: 8
            }]
        );
    }

    /// A logged request for `model`, now.
    fn logged(model: &str) -> RequestLogEntry {
        RequestLogEntry {
            at: time::OffsetDateTime::now_utc(),
            api: agm_store::ApiKind::Anthropic,
            client_model: model.into(),
            upstream_model: "gemini-2.5-flash".into(),
            account_id: None,
            status: 200,
            latency_ms: 1,
            input_tokens: 0,
            output_tokens: 0,
            error_class: None,
            route: "/v1/messages".into(),
            attempts: 1,
            overhead_us: None,
            context_scaled: None,
            key_id: None,
        }
    }

    #[tokio::test]
    async fn calls_say_which_accounts_failed_and_how_long_agm_waited() {
        let ((), facts) = with_facts(async {
            note_attempt(Some("0a1b2c3d"));
            note_failure(&agm_google::ErrorClass::RateLimited {
                delay: Some(Duration::from_secs(2)),
            });
            note_wait(Duration::from_millis(150));
            note_wait(Duration::from_millis(100));
            note_attempt(Some("4e5f6a7b"));
        })
        .await;
        assert_eq!(
            facts.calls,
            [
                Call {
                    account_id: Some("0a1b2c3d".into()),
                    waited_ms: 0,
                    error_class: Some("RateLimited".into()),
                },
                Call {
                    account_id: Some("4e5f6a7b".into()),
                    waited_ms: 250,
                    error_class: None,
                },
            ]
        );
    }

    #[test]
    fn traces_are_found_by_their_row_and_only_when_unambiguous() {
        let traces = Traces::default();
        let entry = |model: &str| RequestLogEntry {
            at: time::macros::datetime!(2026-01-01 00:00:00.123 UTC),
            latency_ms: 7,
            ..logged(model)
        };
        let call = |id: &str| Call {
            account_id: Some(id.into()),
            waited_ms: 0,
            error_class: None,
        };
        traces.keep(&entry("a"), vec![call("1")]);
        traces.keep(&entry("b"), vec![call("2")]);
        traces.keep(&entry("b"), vec![call("3")]);
        assert_eq!(traces.find(&entry("a")), Some(vec![call("1")]));
        assert_eq!(traces.find(&entry("b")), None, "two look the same");
        assert_eq!(traces.find(&entry("c")), None);
        for i in 0..TRACES_KEPT {
            traces.keep(&entry(&format!("x{i}")), Vec::new());
        }
        assert_eq!(traces.find(&entry("a")), None, "only the newest are kept");
    }

    #[tokio::test]
    async fn entries_are_written_in_batches_and_flushed() {
        let store = Store::open_in_memory().await.unwrap();
        let log = std::sync::Arc::new(RequestLog::default());
        let entry = |i: u32| logged(&format!("m{i}"));
        let writer = {
            let (log, store) = (log.clone(), store.clone());
            tokio::spawn(async move { log.run(store).await })
        };
        for i in 0..10 {
            log.record(entry(i));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while store.list_request_log(None, 100).await.unwrap().len() < 10 {
            assert!(tokio::time::Instant::now() < deadline, "not written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        writer.abort();
        let _ = writer.await;
        log.record(entry(10));
        log.flush(&store).await;
        assert_eq!(store.list_request_log(None, 100).await.unwrap().len(), 11);
    }
}

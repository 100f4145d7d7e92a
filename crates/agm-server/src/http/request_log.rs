//! The request log: one row per client API request (route, model, account id, status,
//! attempts, latency, overhead; never a prompt, an answer or a token), handed from the
//! request path to a channel and written to the store in batches by a background
//! task, so a request never waits on the database. Pruned by
//! `[logging] request_log_retention` (`jobs::housekeeping`).

use std::cell::RefCell;
use std::time::Duration;

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
}

impl Default for RequestLog {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        RequestLog {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

impl RequestLog {
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
    });
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
        assert_eq!(facts.client_model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(
            facts.context_scaled.as_deref(),
            Some("standard; cut=10 tokens")
        );
        // Outside a request: nothing to note, and no panic.
        note_attempt(None);
    }

    #[tokio::test]
    async fn entries_are_written_in_batches_and_flushed() {
        let store = Store::open_in_memory().await.unwrap();
        let log = std::sync::Arc::new(RequestLog::default());
        let entry = |i: u32| RequestLogEntry {
            at: time::OffsetDateTime::now_utc(),
            api: agm_store::ApiKind::Anthropic,
            client_model: format!("m{i}"),
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
        };
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

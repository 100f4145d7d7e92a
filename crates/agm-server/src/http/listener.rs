//! Accepting connections without letting slow or idle clients take the server down.
//!
//! axum's own `serve` has no header, idle or connection limits, and sleeps a second
//! after every failed `accept` (so a full file-descriptor table stops `/healthz` too).
//! This accept loop drives hyper directly:
//!
//! - HTTP/1 headers must arrive within `server.header_timeout` (hyper's header-read
//!   timeout, which also bounds how long an idle keep-alive connection waits);
//! - a connection with no request in progress is closed after `server.idle_timeout`;
//! - at most `server.max_connections` are open. At the cap, the oldest connection that
//!   is *evictable* (no request in progress, or every request in progress still
//!   sending its body) is closed to admit the new one, so slowloris clients cannot
//!   lock out `/healthz` or real clients; when every connection is busy the new one is
//!   closed at once.
//!
//! Each request carries a [`BodyPending`] mark in its extensions: the body reader
//! (`crate::limits`) clears it once the body has arrived, which is when a request
//! stops being evictable.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The connection limits from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// One open connection, as the tracker sees it.
struct Conn {
    opened: Instant,
    /// Requests whose response has not finished (its body dropped).
    in_progress: AtomicUsize,
    /// Of those, the ones still sending their body.
    reading_body: AtomicUsize,
    /// Milliseconds since the tracker started at which the last request ended (or the
    /// connection opened): the start of its idle time.
    idle_since_ms: AtomicU64,
    /// Cancelled to close the connection at once (eviction, idle timeout).
    close: CancellationToken,
}

impl Conn {
    fn evictable(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) == self.reading_body.load(Ordering::Acquire)
    }
}

/// Every open connection.
struct Tracker {
    started: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    limits: Limits,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Makes room for one more connection: `None` when the cap is reached and no
    /// connection can be evicted.
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        let mut conns = self.lock();
        if conns.len() >= self.limits.max_connections {
            let victim = conns
                .iter()
                .filter(|(_, c)| c.evictable())
                .min_by_key(|(_, c)| c.opened)
                .map(|(id, _)| *id)?;
            if let Some(conn) = conns.remove(&victim) {
                conn.close.cancel();
                metrics::counter!("agm_connections_evicted_total").increment(1);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            opened: Instant::now(),
            in_progress: AtomicUsize::new(0),
            reading_body: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            close: CancellationToken::new(),
        });
        conns.insert(id, Arc::clone(&conn));
        metrics::gauge!("agm_connections_open").set(conns.len() as f64);
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        let mut conns = self.lock();
        conns.remove(&id);
        metrics::gauge!("agm_connections_open").set(conns.len() as f64);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Closes every connection, busy or not (a drain that ran out of time).
    fn close_all(&self) {
        for conn in self.lock().values() {
            conn.close.cancel();
        }
    }

    /// Closes the connections idle for longer than the idle timeout.
    fn close_idle(&self) {
        let now = self.now_ms();
        let limit = u64::try_from(self.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        for conn in self.lock().values() {
            if conn.in_progress.load(Ordering::Acquire) == 0
                && now.saturating_sub(conn.idle_since_ms.load(Ordering::Acquire)) >= limit
            {
                conn.close.cancel();
            }
        }
    }
}

/// Marks a request whose body has not arrived yet; see the module docs.
#[derive(Clone)]
pub struct BodyPending(Arc<PendingInner>);

struct PendingInner {
    pending: AtomicBool,
    conn: Arc<Conn>,
}

impl BodyPending {
    /// The body has arrived (or the request is done with it): the request now counts
    /// as busy, and its connection is no longer evicted for a newcomer.
    pub fn arrived(&self) {
        if self.0.pending.swap(false, Ordering::AcqRel) {
            self.0.conn.reading_body.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Lives as long as a request is in progress: until its response body is dropped.
struct RequestGuard {
    body: BodyPending,
    tracker: Arc<Tracker>,
}

impl RequestGuard {
    fn start(conn: &Arc<Conn>, tracker: &Arc<Tracker>, has_body: bool) -> RequestGuard {
        conn.in_progress.fetch_add(1, Ordering::AcqRel);
        if has_body {
            conn.reading_body.fetch_add(1, Ordering::AcqRel);
        }
        RequestGuard {
            body: BodyPending(Arc::new(PendingInner {
                pending: AtomicBool::new(has_body),
                conn: Arc::clone(conn),
            })),
            tracker: Arc::clone(tracker),
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.body.arrived();
        let conn = &self.body.0.conn;
        conn.idle_since_ms
            .store(self.tracker.now_ms(), Ordering::Release);
        conn.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request's guard until it is finished or dropped.
struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn has_body(request: &Request<Incoming>) -> bool {
    use http_body::Body as _;
    !request.body().is_end_stream()
}

/// Accepts and serves connections until `shutdown` is cancelled; then asks every
/// connection to finish its requests, waits up to `drain` for them, closes those still
/// open, and returns once they are gone — so every response body has been dropped (a
/// stream's request-log row is written then) before the caller flushes the log.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let tracker = Arc::new(Tracker {
        started: Instant::now(),
        next_id: AtomicU64::new(0),
        conns: Mutex::new(HashMap::new()),
        limits,
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let sweeper = {
        let tracker = Arc::clone(&tracker);
        let every =
            (limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                tracker.close_idle();
            }
        })
    };
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: say so at most once a
                    // second, and try again soon (the cap and the eviction free some).
                    if last_accept_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, open = tracker.len(), "cannot accept a connection");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Some((id, conn)) = tracker.admit() else {
            metrics::counter!("agm_connections_refused_total").increment(1);
            tracing::debug!("connection cap reached and every connection busy; closing a new one");
            drop(stream);
            continue;
        };
        let shared = Shared {
            tracker: Arc::clone(&tracker),
            builder: Arc::clone(&builder),
            app: app.clone(),
            shutdown: shutdown.clone(),
        };
        tokio::spawn(serve_connection(stream, peer, id, conn, shared));
    }
    sweeper.abort();
    // No new connections from here on (they would wait in the backlog unanswered).
    drop(listener);
    // Wait for the open connections to finish their requests.
    let deadline = Instant::now() + drain;
    while tracker.len() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if tracker.len() > 0 {
        tracing::warn!(
            open = tracker.len(),
            "open requests did not finish within {drain:?}; closing them"
        );
        tracker.close_all();
        let closing = Instant::now() + CLOSE_WAIT;
        while tracker.len() > 0 && Instant::now() < closing {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// How long closed connections get to end their tasks at the end of a drain.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What every connection's task shares.
struct Shared {
    tracker: Arc<Tracker>,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    app: Router,
    shutdown: CancellationToken,
}

async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    id: u64,
    conn: Arc<Conn>,
    shared: Shared,
) {
    let Shared {
        tracker,
        builder,
        app,
        shutdown,
    } = shared;
    // Small SSE frames must leave at once: without TCP_NODELAY, Nagle's algorithm holds
    // them back until the client's delayed ACK (~40 ms per stream, seen in bench/).
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let service = {
        let conn = Arc::clone(&conn);
        let tracker = Arc::clone(&tracker);
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let guard = RequestGuard::start(&conn, &tracker, has_body(&request));
            request.extensions_mut().insert(guard.body.clone());
            // The client's address, as axum's `ConnectInfo` (per-address limits).
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = match app.oneshot(request.map(Body::new)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|inner| GuardedBody {
                    inner,
                    _guard: guard,
                }))
            }
        })
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = conn.close.cancelled() => break,
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
    tracker.remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set when the response body that holds it is dropped.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_drain_that_runs_out_closes_open_streams_before_it_returns() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        let app = Router::new().route(
            "/stream",
            axum::routing::get(move || {
                let guard = Dropped(Arc::clone(&flag));
                async move {
                    // A stream that never ends, as a long answer still being sent.
                    let body = futures_util::stream::unfold(guard, |guard| async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Some((Ok::<_, Infallible>(Bytes::from_static(b"x")), guard))
                    });
                    Body::from_stream(body)
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let limits = Limits {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 16,
        };
        let server = tokio::spawn(run(
            listener,
            app,
            limits,
            stop.clone(),
            Duration::from_millis(300),
        ));
        let mut response = reqwest::get(format!("http://{addr}/stream")).await.unwrap();
        assert!(response.chunk().await.unwrap().is_some(), "the stream runs");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("run returns once the drain ran out")
            .unwrap()
            .unwrap();
        // What the request log writes when a body is dropped (a stream's row, with its
        // tokens) has happened before `serve` flushes the log.
        assert!(dropped.load(Ordering::SeqCst));
    }
}

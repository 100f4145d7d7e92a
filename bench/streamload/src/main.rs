//! streamload: the streaming half of agm's benchmark harness (see docs/BENCHMARKS.md).
//!
//! `streamload rate --url U --body FILE [--header 'K: V']... --rate R --duration S`
//!   sends POSTs open-loop at a constant rate (request i is due at t0 + i/R, whatever
//!   the earlier ones are doing) and prints JSON with the time to the first body byte
//!   and to the last byte of each stream, measured from the time the request was due
//!   (so a stalled client or server cannot hide queueing: coordinated omission is
//!   corrected, as `oha --latency-correction` does).
//!
//! `streamload hold --url U --body FILE [--header ...] --n N --pid PID`
//!   opens N streams at once, waits until every one has received its first byte, reads
//!   VmRSS of PID from /proc, then drops them all and prints JSON.
//!
//! `streamload closed --url U --body FILE [--header ...] --n C --duration S`
//!   closed loop: C clients each sending the next request as soon as the last one
//!   ended, for S seconds; prints JSON with the completed requests per second (the
//!   throughput at saturation) and their latency.
//!
//! `streamload front --listen PORT --to HOST:PORT,HOST:PORT,...`
//!   a round-robin TCP front (what a load balancer does, minus its health checks): each
//!   connection goes to the next backend that accepts it. Runs until killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

struct Args {
    mode: String,
    url: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    rate: f64,
    duration: f64,
    n: usize,
    pid: u32,
    timeout: f64,
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_default();
    let mut args = Args {
        mode,
        url: String::new(),
        body: Vec::new(),
        headers: Vec::new(),
        rate: 100.0,
        duration: 10.0,
        n: 1000,
        pid: 0,
        timeout: 60.0,
    };
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| die(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--url" => args.url = value,
            "--body" => {
                args.body = std::fs::read(&value).unwrap_or_else(|e| die(&format!("{value}: {e}")))
            }
            "--header" => {
                let (k, v) = value.split_once(':').unwrap_or_else(|| die("header: K: V"));
                args.headers
                    .push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "--rate" => args.rate = value.parse().unwrap_or_else(|_| die("--rate")),
            "--duration" => args.duration = value.parse().unwrap_or_else(|_| die("--duration")),
            "--n" => args.n = value.parse().unwrap_or_else(|_| die("--n")),
            "--pid" => args.pid = value.parse().unwrap_or_else(|_| die("--pid")),
            "--timeout" => args.timeout = value.parse().unwrap_or_else(|_| die("--timeout")),
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    if args.url.is_empty() || !matches!(args.mode.as_str(), "rate" | "hold" | "closed") {
        die("usage: streamload rate|hold|closed --url U --body FILE [--header 'K: V'] ...");
    }
    args
}

fn die(message: &str) -> ! {
    eprintln!("streamload: {message}");
    std::process::exit(2)
}

/// What one stream did, in seconds from when it was due.
struct Outcome {
    ok: bool,
    ttfb: f64,
    ttlb: f64,
    error: Option<String>,
}

async fn one(
    client: &reqwest::Client,
    args: &Args,
    due: Instant,
    first: Option<&mpsc::UnboundedSender<()>>,
) -> Outcome {
    let mut request = client.post(&args.url).body(args.body.clone());
    for (k, v) in &args.headers {
        request = request.header(k, v);
    }
    let fail = |error: String| Outcome {
        ok: false,
        ttfb: 0.0,
        ttlb: 0.0,
        error: Some(error),
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return fail(format!("send: {error}")),
    };
    let status = response.status();
    let mut body = response.bytes_stream();
    let mut ttfb = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) if !bytes.is_empty() && ttfb.is_none() => {
                ttfb = Some(due.elapsed().as_secs_f64());
                if let Some(tx) = first {
                    let _ = tx.send(());
                }
            }
            Ok(_) => {}
            Err(error) => return fail(format!("body: {error}")),
        }
    }
    let ttlb = due.elapsed().as_secs_f64();
    if !status.is_success() {
        return fail(format!("status {}", status.as_u16()));
    }
    Outcome {
        ok: true,
        ttfb: ttfb.unwrap_or(ttlb),
        ttlb,
        error: None,
    }
}

fn percentiles(mut values: Vec<f64>) -> serde_json::Value {
    if values.is_empty() {
        return json!(null);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[index]
    };
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    json!({
        "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p99.9": at(0.999),
        "min": values[0], "max": values[values.len() - 1], "mean": mean,
    })
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("front") {
        return front(&raw[2..]).await;
    }
    let args = Arc::new(parse());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs_f64(args.timeout.max(1.0) * 10.0))
        .build()
        .unwrap_or_else(|e| die(&format!("client: {e}")));
    let report = match args.mode.as_str() {
        "rate" => rate(client, args).await,
        "closed" => closed(client, args).await,
        _ => hold(client, args).await,
    };
    println!("{report}");
}

async fn rate(client: reqwest::Client, args: Arc<Args>) -> serde_json::Value {
    let total = (args.rate * args.duration).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let client = client.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(
            async move { one(&client, &args, due, None).await },
        ));
    }
    let mut ttfb = Vec::with_capacity(total);
    let mut ttlb = Vec::with_capacity(total);
    let mut errors = 0usize;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(outcome) if outcome.ok => {
                ttfb.push(outcome.ttfb);
                ttlb.push(outcome.ttlb);
            }
            Ok(outcome) => {
                errors += 1;
                first_error = first_error.or(outcome.error);
            }
            Err(error) => {
                errors += 1;
                first_error = first_error.or(Some(error.to_string()));
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    json!({
        "mode": "rate", "url": args.url, "target_rate": args.rate, "duration": args.duration,
        "requests": total, "ok": ttfb.len(), "errors": errors, "first_error": first_error,
        "achieved_rate": ttfb.len() as f64 / elapsed, "elapsed": elapsed,
        "ttfb": percentiles(ttfb), "ttlb": percentiles(ttlb),
    })
}

async fn hold(client: reqwest::Client, args: Arc<Args>) -> serde_json::Value {
    let before = rss_kb(args.pid);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.n);
    for _ in 0..args.n {
        let client = client.clone();
        let args = args.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            one(&client, &args, Instant::now(), Some(&tx)).await
        }));
    }
    drop(tx);
    let mut open = 0usize;
    let deadline = tokio::time::sleep(Duration::from_secs_f64(args.timeout));
    tokio::pin!(deadline);
    while open < args.n {
        tokio::select! {
            got = rx.recv() => match got { Some(()) => open += 1, None => break },
            _ = &mut deadline => break,
        }
    }
    let all_open_after = start.elapsed().as_secs_f64();
    // Let the allocator settle a moment, then read RSS with every stream still open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_kb(args.pid);
    let finished_early = tasks.iter().filter(|t| t.is_finished()).count();
    for task in &tasks {
        task.abort();
    }
    json!({
        "mode": "hold", "url": args.url, "n": args.n, "open": open,
        "finished_before_measure": finished_early, "seconds_to_open": all_open_after,
        "rss_kb_before": before, "rss_kb_with_streams": during,
    })
}

/// The round-robin TCP front (`streamload front`).
async fn front(flags: &[String]) {
    let value = |name: &str| {
        flags
            .iter()
            .position(|f| f == name)
            .and_then(|i| flags.get(i + 1))
            .cloned()
            .unwrap_or_else(|| die(&format!("front needs {name}")))
    };
    let listen = format!("127.0.0.1:{}", value("--listen"));
    let backends: Arc<Vec<String>> =
        Arc::new(value("--to").split(',').map(str::to_owned).collect());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| die(&format!("{listen}: {e}")));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let _ = inbound.set_nodelay(true);
        let first = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let backends = backends.clone();
        tokio::spawn(async move {
            for k in 0..backends.len() {
                let backend = &backends[(first + k) % backends.len()];
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    return;
                }
            }
        });
    }
}

/// `streamload closed`: `--n` clients back to back for `--duration` seconds.
async fn closed(client: reqwest::Client, args: Arc<Args>) -> serde_json::Value {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(args.n);
    for _ in 0..args.n {
        let client = client.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while Instant::now() < end {
                done.push(one(&client, &args, Instant::now(), None).await);
            }
            done
        }));
    }
    let mut ttlb = Vec::new();
    let mut errors = 0usize;
    let mut first_error = None;
    for task in tasks {
        for outcome in task.await.unwrap_or_default() {
            if outcome.ok {
                ttlb.push(outcome.ttlb);
            } else {
                errors += 1;
                first_error = first_error.or(outcome.error);
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    json!({
        "mode": "closed", "url": args.url, "clients": args.n, "duration": args.duration,
        "ok": ttlb.len(), "errors": errors, "first_error": first_error,
        "achieved_rate": ttlb.len() as f64 / elapsed, "elapsed": elapsed,
        "ttlb": percentiles(ttlb),
    })
}

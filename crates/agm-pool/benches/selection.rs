//! How long an account switch takes: `Selector::pick` over pools of 10, 100 and 1,000
//! accounts with mixed tiers, quota, latency and cooldowns, for each scheduling mode,
//! with and without a sticky session. The issue asks for a decision in under 100 µs
//! (the PRD: 100 ms). `cargo bench -p agm-pool`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use agm_pool::selection::{AccountView, Availability, Scheduling, SelectionConfig, Selector, Tier};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn pool(n: usize, now: Instant) -> Vec<AccountView> {
    (0..n)
        .map(|i| AccountView {
            id: format!("acct{i:05}"),
            tier: match i % 4 {
                0 => Some(Tier::Ultra),
                1 => Some(Tier::Pro),
                2 => Some(Tier::Free),
                _ => None,
            },
            availability: if i % 7 == 0 {
                Availability::CoolingDown {
                    until: now + Duration::from_secs(30),
                }
            } else {
                Availability::Available
            },
            remaining_fraction: Some((i % 10) as f64 / 10.0),
            recent_latency: Some(Duration::from_millis(200 + (i % 13) as u64 * 10)),
            in_flight: (i % 3) as u32,
        })
        .collect()
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    let now = Instant::now();
    for n in [10, 100, 1_000] {
        let accounts = pool(n, now);
        for scheduling in [
            Scheduling::CacheFirst,
            Scheduling::Balance,
            Scheduling::PerformanceFirst,
            Scheduling::RoundRobin,
        ] {
            let selector = Selector::new(SelectionConfig {
                scheduling,
                ..SelectionConfig::default()
            });
            group.bench_with_input(
                BenchmarkId::new(scheduling.name(), n),
                &accounts,
                |b, accounts| {
                    let mut i = 0u64;
                    b.iter(|| {
                        i += 1;
                        // 10,000 conversations in turn: balance, performance-first
                        // and round-robin decide afresh every time; cache-first
                        // mostly takes its sticky shortcut, as in real use.
                        let session = format!("s{}", i % 10_000);
                        black_box(selector.pick(Some(&session), black_box(accounts), now))
                    });
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);

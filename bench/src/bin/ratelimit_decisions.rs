//! Rate-limit decisions per second, in-process and on Redis, each against a baseline
//! measured in the same run:
//! - in-process: the limiter versus the bare map work it cannot avoid (one mutex-guarded
//!   `HashMap<String, i64>` lookup and insert per decision, same keys, same threads);
//! - Redis: one GCRA script round trip versus one `PING` round trip, same connection
//!   type, same concurrency.
//!
//! `cargo run --release -p aegis-bench --bin ratelimit_decisions` (Redis from
//! `AEGIS_BENCH_REDIS_URL`, default redis://127.0.0.1:6379; skipped if unreachable).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis::ratelimit::redis::RedisLimiter;
use aegis_core::ratelimit::{Check, LocalLimiter, Quota, RateLimitBackend, now_micros};

const RUN: Duration = Duration::from_secs(3);
const KEYS: usize = 10_000;

fn keys() -> Arc<Vec<String>> {
    Arc::new(
        (0..KEYS)
            .map(|i| format!("default:198.51.{}.{}", i / 256, i % 256))
            .collect(),
    )
}

/// A quota no benchmark reaches, so every decision does the full admit path.
fn quota() -> Quota {
    Quota::per(1_000_000_000, 60)
}

/// Runs `op(i)` on `threads` OS threads for `RUN`; returns operations per second.
fn threaded(threads: usize, op: impl Fn(usize) + Send + Sync + 'static) -> f64 {
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (op, stop, count) = (op.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut i = t * 7919;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        op(i);
                        i = i.wrapping_add(1);
                    }
                    n += 256;
                }
                count.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("bench thread");
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn in_process() {
    println!("== in-process limiter: decisions/s ({KEYS} keys, {RUN:?} per figure)");
    println!(
        "{:>8} {:>16} {:>16} {:>8}",
        "threads", "limiter", "baseline", "ratio"
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    for threads in [1, cores, 16] {
        let limiter = Arc::new(LocalLimiter::default());
        let k = keys();
        let q = quota();
        let rate = threaded(threads, move |i| {
            let check = Check {
                key: k[i % KEYS].clone(),
                quota: q,
            };
            std::hint::black_box(limiter.check_at(std::slice::from_ref(&check), now_micros()));
        });
        let map = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
        let k = keys();
        let base = threaded(threads, move |i| {
            let key = k[i % KEYS].clone();
            let now = now_micros();
            let mut m = map.lock().expect("baseline map");
            let tat = m.get(key.as_str()).copied().unwrap_or(now);
            m.insert(key, tat.max(now) + 1);
        });
        println!(
            "{threads:>8} {rate:>16.0} {base:>16.0} {:>8.2}",
            rate / base
        );
    }
}

async fn concurrent<F, Fut>(clients: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + RUN;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.spawn(async move {
            let mut n = 0u64;
            let mut i = c * 7919;
            while Instant::now() < deadline {
                if !op(i).await {
                    return Err(());
                }
                n += 1;
                i = i.wrapping_add(1);
            }
            Ok(n)
        });
    }
    let started = Instant::now();
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(n)) => total += n,
            _ => return f64::NAN,
        }
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn on_redis(url: &str) {
    let prefix = format!("aegis-bench:{}:", now_micros());
    let limiter =
        Arc::new(RedisLimiter::new(url, &prefix, Duration::from_secs(2)).expect("redis url"));
    if let Err(e) = limiter.ping().await {
        println!("== Redis: skipped ({}: {})", url, e.0);
        return;
    }
    let client = redis::Client::open(url).expect("redis url");
    let ping_conn = client
        .get_connection_manager()
        .await
        .expect("redis connection");
    println!("== Redis limiter ({url}): decisions/s vs PING round trips/s ({RUN:?} per figure)");
    println!(
        "{:>8} {:>16} {:>16} {:>8}",
        "clients", "decisions", "PING", "ratio"
    );
    for clients in [1, 16, 64] {
        let k = keys();
        let l = limiter.clone();
        let q = quota();
        let rate = concurrent(clients, move |i| {
            let (l, check) = (
                l.clone(),
                Check {
                    key: k[i % KEYS].clone(),
                    quota: q,
                },
            );
            async move { l.check(std::slice::from_ref(&check)).await.is_ok() }
        })
        .await;
        let conn = ping_conn.clone();
        let base = concurrent(clients, move |_| {
            let mut conn = conn.clone();
            async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            }
        })
        .await;
        println!(
            "{clients:>8} {rate:>16.0} {base:>16.0} {:>8.2}",
            rate / base
        );
    }
    // The benchmark's keys expire by themselves (PX = their TAT); nothing to clean.
}

fn main() {
    in_process();
    let url = std::env::var("AEGIS_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(on_redis(&url));
}

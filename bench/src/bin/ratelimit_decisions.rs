//! Rate-limit decisions per second, in-process and on Redis, each against a baseline
//! measured in the same run:
//! - in-process: the limiter versus the bare map work it cannot avoid (one mutex-guarded
//!   `HashMap<String, i64>` lookup and insert per decision, same keys, same threads);
//! - Redis: one GCRA script round trip versus one `PING` round trip, same connection
//!   type, same concurrency.
//!
//! Each figure is measured in `ROUNDS` slices alternating with its baseline's slices,
//! so that a drift of a shared machine's speed hits both sides alike.
//!
//! `cargo run --release -p aegis-bench --bin ratelimit_decisions` (Redis from
//! `AEGIS_BENCH_REDIS_URL`, default redis://127.0.0.1:6379; skipped if unreachable).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis::ratelimit::redis::RedisLimiter;
use aegis_core::ratelimit::{Check, LocalLimiter, Quota, RateLimitBackend, now_micros};

/// Measuring time per figure, split in `ROUNDS` slices alternating with the baseline.
const RUN: Duration = Duration::from_secs(3);
const ROUNDS: u32 = 3;
const KEYS: usize = 10_000;

/// Client IPs as the server keys them (`tenant:ip`), 10,000 distinct ones.
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

/// Operations counted over a measured time.
#[derive(Default)]
struct Tally {
    ops: u64,
    secs: f64,
}

impl Tally {
    fn add(&mut self, ops: u64, secs: f64) {
        self.ops += ops;
        self.secs += secs;
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// Runs `op(i)` on `threads` OS threads for `slice`; returns (operations, seconds).
fn threaded<F: Fn(usize) + Send + Sync + 'static>(
    threads: usize,
    slice: Duration,
    op: &Arc<F>,
) -> (u64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
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
    std::thread::sleep(slice);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("a benchmark thread panicked");
    }
    (
        count.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

fn in_process() {
    println!(
        "== in-process limiter: decisions/s ({KEYS} keys, {RUN:?} per figure, interleaved with the baseline)"
    );
    println!(
        "   baseline: Mutex<HashMap<String, i64>> get+insert per second, same keys and threads"
    );
    println!(
        "{:>8} {:>16} {:>16} {:>8}",
        "threads", "limiter", "baseline", "ratio"
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut counts = vec![1, cores, 16];
    counts.sort_unstable();
    counts.dedup();
    let slice = RUN / ROUNDS;
    for threads in counts {
        let limiter = Arc::new(LocalLimiter::default());
        let k = keys();
        let q = quota();
        let decide = Arc::new(move |i: usize| {
            let check = Check {
                key: k[i % KEYS].clone(),
                quota: q,
            };
            std::hint::black_box(limiter.check_at(std::slice::from_ref(&check), now_micros()));
        });
        let map = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
        let k = keys();
        let baseline = Arc::new(move |i: usize| {
            let key = k[i % KEYS].clone();
            let now = now_micros();
            let mut m = map.lock().expect("baseline map lock poisoned");
            let tat = m.get(key.as_str()).copied().unwrap_or(now);
            m.insert(key, tat.max(now) + 1);
        });
        let (mut rate, mut base) = (Tally::default(), Tally::default());
        for _ in 0..ROUNDS {
            let (n, s) = threaded(threads, slice, &decide);
            rate.add(n, s);
            let (n, s) = threaded(threads, slice, &baseline);
            base.add(n, s);
        }
        let (rate, base) = (rate.rate(), base.rate());
        println!(
            "{threads:>8} {rate:>16.0} {base:>16.0} {:>8.2}",
            rate / base
        );
    }
}

/// Runs `op(i)` in `clients` concurrent tasks for `slice`; returns (operations,
/// seconds), or the first error (a benchmark that fails must not print a figure).
async fn concurrent<F, Fut>(
    clients: usize,
    slice: Duration,
    op: &Arc<F>,
) -> Result<(u64, f64), String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let started = Instant::now();
    let deadline = started + slice;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.spawn(async move {
            let mut n = 0u64;
            let mut i = c * 7919;
            while Instant::now() < deadline {
                op(i).await?;
                n += 1;
                i = i.wrapping_add(1);
            }
            Ok::<u64, String>(n)
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.map_err(|e| format!("benchmark task: {e}"))??;
    }
    Ok((total, started.elapsed().as_secs_f64()))
}

/// The URL without its credentials, for printing.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_string(),
    }
}

async fn on_redis(url: &str) -> Result<(), String> {
    // Unique per run; the limiter's keys expire at their TAT (milliseconds here), so
    // nothing is left behind and nothing else is touched.
    let prefix = format!("aegis-bench:{}:", now_micros());
    let limiter = Arc::new(
        RedisLimiter::new(url, &prefix, Duration::from_secs(2))
            .map_err(|e| format!("AEGIS_BENCH_REDIS_URL: {e}"))?,
    );
    if let Err(e) = limiter.ping().await {
        println!("== Redis: skipped ({}: {})", redacted(url), e.0);
        return Ok(());
    }
    let ping_conn = redis::Client::open(url)
        .map_err(|e| format!("AEGIS_BENCH_REDIS_URL: {e}"))?
        .get_connection_manager()
        .await
        .map_err(|e| format!("redis connection for PING: {e}"))?;
    println!(
        "== Redis limiter ({}): decisions/s vs PING round trips/s ({RUN:?} per figure, interleaved)",
        redacted(url)
    );
    println!(
        "   one multiplexed connection each; keys under {prefix}* (they expire by themselves)"
    );
    println!(
        "{:>8} {:>16} {:>16} {:>8}",
        "clients", "decisions", "PING", "ratio"
    );
    let slice = RUN / ROUNDS;
    for clients in [1, 16, 64] {
        let (k, l, q) = (keys(), limiter.clone(), quota());
        let decide = Arc::new(move |i: usize| {
            let (l, check) = (
                l.clone(),
                Check {
                    key: k[i % KEYS].clone(),
                    quota: q,
                },
            );
            async move {
                let decisions = l
                    .check(std::slice::from_ref(&check))
                    .await
                    .map_err(|e| e.0)?;
                match decisions.first() {
                    Some(d) if d.allowed => Ok(()),
                    _ => Err(format!("refused or empty decision: {decisions:?}")),
                }
            }
        });
        let conn = ping_conn.clone();
        let ping = Arc::new(move |_: usize| {
            let mut conn = conn.clone();
            async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| format!("PING: {e}"))
            }
        });
        let (mut rate, mut base) = (Tally::default(), Tally::default());
        for _ in 0..ROUNDS {
            let context = |e| format!("Redis benchmark with {clients} clients: {e}");
            let (n, s) = concurrent(clients, slice, &decide).await.map_err(context)?;
            rate.add(n, s);
            let (n, s) = concurrent(clients, slice, &ping).await.map_err(context)?;
            base.add(n, s);
        }
        let (rate, base) = (rate.rate(), base.rate());
        println!(
            "{clients:>8} {rate:>16.0} {base:>16.0} {:>8.2}",
            rate / base
        );
    }
    Ok(())
}

fn main() {
    in_process();
    let url = std::env::var("AEGIS_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    if let Err(e) = runtime.block_on(on_redis(&url)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

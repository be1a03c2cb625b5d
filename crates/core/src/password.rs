//! Password policy and hashing. Argon2id (OWASP: m=19456 KiB, t=2, p=1) runs on a pool
//! of dedicated hashing threads, one per allowed computation, fed by a queue with a
//! bounded number of callers allowed to wait: beyond it callers are told to retry at
//! once, so a login flood can exhaust neither memory nor CPU nor the queue. A thread
//! takes the next job the moment it finishes one, without a round through the async
//! runtime. Legacy bcrypt hashes verify once and are then upgraded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::model::HashAlgorithm;
use crate::{CoreError, Result};

/// Argon2id memory cost in KiB (OWASP minimum configuration).
pub const ARGON2_M_COST: u32 = 19_456;
/// Argon2id iterations.
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id parallelism.
pub const ARGON2_P_COST: u32 = 1;

/// Rules a new password must satisfy.
#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    /// Minimum zxcvbn score (0..=4).
    pub min_strength: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: 128,
            min_strength: 3,
        }
    }
}

impl PasswordPolicy {
    /// Checks length and strength; `context` holds words (like the e-mail) the password
    /// must not be built from.
    pub fn check(&self, password: &str, context: &[&str]) -> Result<()> {
        let len = password.chars().count();
        if len < self.min_length || len > self.max_length {
            return Err(CoreError::Invalid(format!(
                "password: must be between {} and {} characters",
                self.min_length, self.max_length
            )));
        }
        // Length is bounded above, so zxcvbn's work is bounded too.
        let score: u8 = zxcvbn::zxcvbn(password, context).score().into();
        if score < self.min_strength {
            return Err(CoreError::Invalid(format!(
                "password: too weak (strength {score} of 4, at least {} required); use a longer passphrase",
                self.min_strength
            )));
        }
        Ok(())
    }
}

/// Outcome of verifying a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password.
    No,
    /// Right password, hash is current.
    Yes,
    /// Right password, but the stored hash should be replaced by a fresh Argon2id hash.
    YesNeedsRehash,
}

/// Memory one Argon2id computation needs, with head-room for the rest of the process.
const HASH_MEMORY_BUDGET: u64 = 2 * ARGON2_M_COST as u64 * 1024;

/// Simultaneous hashes for `cores` cores and `mem_available` bytes of free memory: one
/// per core, fewer when memory is short, never zero.
pub fn concurrency_for(cores: usize, mem_available: Option<u64>) -> usize {
    let by_memory = mem_available
        .map(|m| usize::try_from(m / HASH_MEMORY_BUDGET).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    cores.min(by_memory).max(1)
}

/// `MemAvailable` from /proc/meminfo, in bytes (Linux; `None` elsewhere).
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// What one hash typically costs with the parameters above on a server core (20–60 ms
/// measured); only used to turn a queue length into a retry hint.
const TYPICAL_HASH_MS: u64 = 50;

/// Longest retry hint: a client told to wait longer would rather see an error.
const MAX_RETRY_AFTER_SECS: u64 = 30;

/// Seconds until a full queue of `max_waiting` calls has drained through `concurrency`
/// slots, rounded up, between 1 and [`MAX_RETRY_AFTER_SECS`]. It is computed once from the
/// capacity rather than from the live queue: a refusal happens only when the queue is
/// full, so the two are the same, and the hint stays stable for clients.
fn retry_after_for(concurrency: usize, max_waiting: usize) -> u64 {
    let waiting = u64::try_from(max_waiting).unwrap_or(u64::MAX);
    let slots = u64::try_from(concurrency.max(1)).unwrap_or(u64::MAX);
    let drain_ms = waiting.saturating_mul(TYPICAL_HASH_MS) / slots;
    drain_ms.div_ceil(1000).clamp(1, MAX_RETRY_AFTER_SECS)
}

/// One admitted hashing call (running or waiting); frees its place when dropped, also
/// when the caller gives up while waiting.
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place among the hashing calls, taken before the work that leads up to one (a
/// login's database read) and spent by exactly one verification: under a flood of
/// logins the refusal then comes before that work, and costs little more than parsing
/// the request. Dropping it unspent frees the place.
pub struct HashPlace(Admission);

/// Hashes and verifies passwords with bounded concurrency and a bounded queue.
#[derive(Clone)]
pub struct PasswordHasher {
    /// Jobs for the hashing threads (they stop when every clone of the hasher is gone).
    queue: std::sync::mpsc::Sender<Job>,
    /// Calls running or waiting for a hashing thread.
    admitted: Arc<AtomicUsize>,
    /// Most calls admitted at once: concurrency plus the queue.
    capacity: usize,
    /// Hashing threads.
    threads: usize,
    /// Hint given with a refusal; see [`retry_after_for`].
    retry_after_secs: u64,
    /// How long a refusal waits before it is answered; see
    /// [`with_refusal_delay`](Self::with_refusal_delay).
    refusal_delay: std::time::Duration,
    /// A real Argon2id hash of a random password, verified when the user does not exist
    /// so that response timing does not reveal which accounts exist.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("threads", &self.threads)
            .field("admitted", &self.admitted.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish()
    }
}

fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| CoreError::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &[u8]) -> Result<String> {
    let hash = argon2()?
        .hash_password(password)
        .map_err(|e| CoreError::Internal(format!("argon2 hash: {e}")))?;
    Ok(hash.to_string())
}

/// Largest memory area (in 1 KiB blocks) kept per thread between verifications: the
/// current parameters' 19 MiB, with room for a stronger setting. A stored hash asking
/// for more gets a one-off area.
const KEPT_BLOCKS: usize = 2 * ARGON2_M_COST as usize;

/// Verifies `password` against a parsed Argon2 PHC hash and its parameters. Same
/// computation as `Argon2::verify_password`, but each hashing thread reuses one memory
/// area instead of allocating and zeroing 19 MiB (and faulting it in) per login: that
/// was a tenth of a login's CPU time beside the hash itself.
fn argon2_matches(password: &[u8], parsed: &PasswordHash, params: Params) -> bool {
    use std::cell::RefCell;
    thread_local! {
        static BLOCKS: RefCell<Vec<argon2::Block>> = const { RefCell::new(Vec::new()) };
    }
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version {
        Some(v) => match Version::try_from(v) {
            Ok(v) => v,
            Err(_) => return false,
        },
        None => Version::default(),
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let computed = if blocks <= KEPT_BLOCKS {
        BLOCKS.with(|area| {
            let mut area = area.borrow_mut();
            if area.len() < blocks {
                area.resize(blocks, argon2::Block::default());
            }
            argon2.hash_password_into_with_memory(
                password,
                salt.as_ref(),
                &mut out,
                &mut area[..blocks],
            )
        })
    } else {
        argon2.hash_password_into(password, salt.as_ref(), &mut out)
    };
    computed.is_ok() && crate::crypto::constant_time_eq(&out, expected.as_bytes())
}

fn verify_blocking(password: &[u8], stored: &str, algorithm: HashAlgorithm) -> Result<Verified> {
    match algorithm {
        HashAlgorithm::Argon2id => {
            let Ok(parsed) = PasswordHash::new(stored) else {
                return Ok(Verified::No);
            };
            let Ok(params) = Params::try_from(&parsed) else {
                return Ok(Verified::No);
            };
            let current = params.m_cost() == ARGON2_M_COST
                && params.t_cost() == ARGON2_T_COST
                && params.p_cost() == ARGON2_P_COST
                && parsed.algorithm.as_str() == "argon2id";
            if !argon2_matches(password, &parsed, params) {
                return Ok(Verified::No);
            }
            Ok(if current {
                Verified::Yes
            } else {
                Verified::YesNeedsRehash
            })
        }
        HashAlgorithm::Bcrypt => match bcrypt::verify(password, stored) {
            Ok(true) => Ok(Verified::YesNeedsRehash),
            _ => Ok(Verified::No),
        },
    }
}

/// A computation for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// A queued call's place among the admitted ones: taken by the hashing thread when the
/// job starts, or by the caller when it gives up first.
struct Place(std::sync::Mutex<Option<Admission>>);

impl Place {
    fn take(&self) -> Option<Admission> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Frees a queued call's place when its caller stops waiting (a job already running
/// keeps it).
struct GiveUp(Arc<Place>);

impl Drop for GiveUp {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

/// Starts `n` threads that run queued jobs until the queue's sender is gone.
fn start_hashing_threads(n: usize) -> Result<std::sync::mpsc::Sender<Job>> {
    let (queue, jobs) = std::sync::mpsc::channel::<Job>();
    let jobs = Arc::new(std::sync::Mutex::new(jobs));
    for i in 0..n {
        let jobs = jobs.clone();
        std::thread::Builder::new()
            .name(format!("aegis-hash-{i}"))
            .spawn(move || {
                loop {
                    let next = match jobs.lock() {
                        Ok(jobs) => jobs.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = next else { return };
                    // A panicking job loses its answer (the caller gets an error), not
                    // the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| CoreError::Internal(format!("starting a hashing thread: {e}")))?;
    }
    Ok(queue)
}

impl PasswordHasher {
    /// `concurrency` bounds simultaneous hash computations (each uses ~19 MiB);
    /// `max_waiting` bounds the callers waiting for one (0: 16 × concurrency).
    pub fn new(concurrency: usize, max_waiting: usize) -> Result<Self> {
        let dummy = hash_blocking(&crate::crypto::random_bytes::<32>()?)?;
        let concurrency = concurrency.max(1);
        let max_waiting = if max_waiting == 0 {
            concurrency.saturating_mul(16)
        } else {
            max_waiting
        };
        Ok(PasswordHasher {
            queue: start_hashing_threads(concurrency)?,
            threads: concurrency,
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: concurrency.saturating_add(max_waiting),
            retry_after_secs: retry_after_for(concurrency, max_waiting),
            refusal_delay: std::time::Duration::ZERO,
            dummy_hash: dummy.into(),
        })
    }

    /// Refusals wait `delay` before they are answered (they hold no place and no
    /// memory beyond the waiting task). A refusal answered at once invites a flood to
    /// come straight back: 256 connections then make some 15,000 refused logins a
    /// second, and that CPU is taken from every other request. Waiting caps each
    /// connection of a flood at one attempt per `delay`; a client that honours
    /// `Retry-After` waits at least as long anyway.
    pub fn with_refusal_delay(mut self, delay: std::time::Duration) -> Self {
        self.refusal_delay = delay;
        self
    }

    /// A sensible default concurrency: the number of cores, fewer if memory is short.
    pub fn default_concurrency() -> usize {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        concurrency_for(cores, mem_available())
    }

    /// Calls running or waiting now, and the most that may be (for metrics and tests).
    pub fn queue_stats(&self) -> (usize, usize) {
        (self.admitted.load(Ordering::Acquire), self.capacity)
    }

    /// Takes a place among running and waiting calls, or refuses at once when all are
    /// taken, so that a flood costs neither memory for waiters nor latency for callers.
    fn admit(&self) -> Result<Admission> {
        let mut current = self.admitted.load(Ordering::Acquire);
        loop {
            if current >= self.capacity {
                metrics::counter!("aegis_password_hash_rejected_total").increment(1);
                return Err(CoreError::Busy {
                    retry_after_secs: self.retry_after_secs,
                });
            }
            match self.admitted.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Admission(self.admitted.clone())),
                Err(seen) => current = seen,
            }
        }
    }

    /// Takes a place for a later [`verify_in`](Self::verify_in) or
    /// [`verify_dummy_in`](Self::verify_dummy_in), or refuses (`Busy`, after the refusal
    /// delay) when all are taken.
    pub async fn reserve(&self) -> Result<HashPlace> {
        match self.admit() {
            Ok(admission) => Ok(HashPlace(admission)),
            Err(refused) => {
                if !self.refusal_delay.is_zero() {
                    tokio::time::sleep(self.refusal_delay).await;
                }
                Err(refused)
            }
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let place = self.reserve().await?;
        self.run_in(place, job).await
    }

    /// Runs `job` on a hashing thread in the place already taken.
    async fn run_in<T: Send + 'static>(
        &self,
        HashPlace(admission): HashPlace,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let place = Arc::new(Place(std::sync::Mutex::new(Some(admission))));
        let _gives_up = GiveUp(place.clone());
        let (done, result) = tokio::sync::oneshot::channel();
        let queued: Job = Box::new(move || {
            // A caller who went away while queued took its place back: nothing to do.
            // Otherwise the place is held until the computation has really finished.
            let Some(held) = place.take() else {
                return;
            };
            let out = job();
            // Free the place before answering, so the caller sees it free.
            drop(held);
            let _ = done.send(out);
        });
        self.queue
            .send(queued)
            .map_err(|_| CoreError::Internal("hashing threads stopped".into()))?;
        result
            .await
            .map_err(|_| CoreError::Internal("hash job lost".into()))?
    }

    /// Produces a PHC-format Argon2id hash.
    pub async fn hash(&self, password: &SecretString) -> Result<String> {
        let pw = password.expose_secret().as_bytes().to_vec();
        self.run(move || hash_blocking(&pw)).await
    }

    /// Verifies `password` against a stored hash.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: &str,
        algorithm: HashAlgorithm,
    ) -> Result<Verified> {
        let place = self.reserve().await?;
        self.verify_in(place, password, stored, algorithm).await
    }

    /// [`verify`](Self::verify) in a place taken by [`reserve`](Self::reserve).
    pub async fn verify_in(
        &self,
        place: HashPlace,
        password: &SecretString,
        stored: &str,
        algorithm: HashAlgorithm,
    ) -> Result<Verified> {
        let pw = password.expose_secret().as_bytes().to_vec();
        let stored = stored.to_string();
        self.run_in(place, move || verify_blocking(&pw, &stored, algorithm))
            .await
    }

    /// Spends the same work as a real verification, for unknown or locked accounts.
    pub async fn verify_dummy(&self, password: &SecretString) -> Result<()> {
        let place = self.reserve().await?;
        self.verify_dummy_in(place, password).await
    }

    /// [`verify_dummy`](Self::verify_dummy) in a place taken by [`reserve`](Self::reserve).
    pub async fn verify_dummy_in(&self, place: HashPlace, password: &SecretString) -> Result<()> {
        let dummy = self.dummy_hash.to_string();
        self.verify_in(place, password, &dummy, HashAlgorithm::Argon2id)
            .await
            .map(|_| ())
    }
}

/// Recognises the algorithm of an imported hash string.
pub fn detect_algorithm(hash: &str) -> Option<HashAlgorithm> {
    if hash.starts_with("$argon2id$") {
        Some(HashAlgorithm::Argon2id)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        Some(HashAlgorithm::Bcrypt)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn concurrency_follows_cores_and_memory() {
        assert_eq!(concurrency_for(8, None), 8);
        assert_eq!(concurrency_for(8, Some(24 << 30)), 8);
        // 100 MiB leaves room for two 38 MiB budgets.
        assert_eq!(concurrency_for(8, Some(100 << 20)), 2);
        assert_eq!(concurrency_for(8, Some(1 << 20)), 1);
        assert_eq!(concurrency_for(0, None), 1);
    }

    #[test]
    fn retry_hint_is_the_time_a_full_queue_takes_to_drain() {
        assert_eq!(retry_after_for(1, 1), 1);
        assert_eq!(retry_after_for(4, 64), 1);
        assert_eq!(retry_after_for(1, 100), 5);
        assert_eq!(retry_after_for(2, 100_000), MAX_RETRY_AFTER_SECS);
        assert_eq!(retry_after_for(0, 0), 1);
    }

    fn secret() -> SecretString {
        SecretString::from("correct horse battery staple 42".to_string())
    }

    /// Starts a hash on another task.
    fn spawn_hash(hasher: &PasswordHasher) -> tokio::task::JoinHandle<Result<String>> {
        let hasher = hasher.clone();
        tokio::spawn(async move { hasher.hash(&secret()).await })
    }

    /// Waits until `n` calls are running or queued.
    async fn until_admitted(hasher: &PasswordHasher, n: usize) {
        while hasher.queue_stats().0 < n {
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn zero_queue_means_sixteen_per_slot() {
        assert_eq!(
            PasswordHasher::new(2, 0).unwrap().queue_stats(),
            (0, 2 + 32)
        );
        assert_eq!(PasswordHasher::new(0, 3).unwrap().queue_stats(), (0, 1 + 3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_full_queue_refuses_at_once_and_frees_its_places() {
        let hasher = PasswordHasher::new(1, 1).unwrap();
        // Two calls take the running slot and the one queue place.
        let (a, b) = (spawn_hash(&hasher), spawn_hash(&hasher));
        until_admitted(&hasher, 2).await;
        let started = Instant::now();
        let refused = hasher.hash(&secret()).await;
        let waited = started.elapsed();
        assert!(matches!(
            refused,
            Err(CoreError::Busy {
                retry_after_secs: 1
            })
        ));
        assert!(
            waited < Duration::from_millis(50),
            "refused after {waited:?}"
        );
        assert!(a.await.unwrap().is_ok());
        assert!(b.await.unwrap().is_ok());
        assert_eq!(hasher.queue_stats(), (0, 2));
        assert!(hasher.hash(&secret()).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_beyond_the_queue_is_partly_refused_fast() {
        let hasher = PasswordHasher::new(1, 1).unwrap();
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let hasher = hasher.clone();
            burst.spawn(async move {
                let started = Instant::now();
                let r = hasher.hash(&secret()).await;
                (r, started.elapsed())
            });
        }
        let (mut done, mut busy, mut slowest_refusal) = (0, 0, Duration::ZERO);
        let mut fastest_hash = Duration::MAX;
        while let Some(joined) = burst.join_next().await {
            match joined.unwrap() {
                (Ok(_), took) => {
                    done += 1;
                    fastest_hash = fastest_hash.min(took);
                }
                (Err(CoreError::Busy { .. }), took) => {
                    busy += 1;
                    slowest_refusal = slowest_refusal.max(took);
                }
                (Err(e), _) => panic!("unexpected error {e}"),
            }
        }
        assert!(done >= 2, "{done} hashed, {busy} refused");
        assert!(busy >= 1, "{done} hashed, {busy} refused");
        assert!(
            slowest_refusal < fastest_hash / 2,
            "refusals take {slowest_refusal:?}, a hash {fastest_hash:?}"
        );
        assert_eq!(hasher.queue_stats(), (0, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_caller_that_gives_up_while_queued_frees_its_place() {
        let hasher = PasswordHasher::new(1, 1).unwrap();
        let running = spawn_hash(&hasher);
        // Once the first call runs, the next can only wait for the thread.
        while hasher.queue_stats().0 == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(1), hasher.hash(&secret())).await;
        assert!(gave_up.is_err(), "timed out while queued");
        assert_eq!(hasher.queue_stats().0, 1, "only the running call is left");
        assert!(running.await.unwrap().is_ok());
        assert_eq!(hasher.queue_stats(), (0, 2));
        assert!(hasher.hash(&secret()).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reserved_place_counts_until_spent_or_dropped() {
        let hasher = PasswordHasher::new(1, 1).unwrap();
        let (first, second) = (
            hasher.reserve().await.unwrap(),
            hasher.reserve().await.unwrap(),
        );
        assert_eq!(hasher.queue_stats(), (2, 2));
        assert!(matches!(
            hasher.reserve().await,
            Err(CoreError::Busy { .. })
        ));
        assert!(matches!(
            hasher.hash(&secret()).await,
            Err(CoreError::Busy { .. })
        ));
        drop(first);
        assert_eq!(hasher.queue_stats(), (1, 2));
        let hash = hasher.hash(&secret()).await.unwrap();
        let verified = hasher
            .verify_in(second, &secret(), &hash, HashAlgorithm::Argon2id)
            .await
            .unwrap();
        assert_eq!(verified, Verified::Yes);
        assert_eq!(hasher.queue_stats(), (0, 2));
        let place = hasher.reserve().await.unwrap();
        hasher.verify_dummy_in(place, &secret()).await.unwrap();
        assert_eq!(hasher.queue_stats(), (0, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_refusal_waits_the_refusal_delay_and_takes_no_place() {
        let delay = Duration::from_millis(200);
        let hasher = PasswordHasher::new(1, 0).unwrap().with_refusal_delay(delay);
        let mut held = Vec::new();
        for _ in 0..17 {
            held.push(hasher.reserve().await.unwrap());
        }
        let started = Instant::now();
        let refused = hasher.hash(&secret()).await;
        let waited = started.elapsed();
        assert!(matches!(refused, Err(CoreError::Busy { .. })));
        assert!(waited >= delay, "answered after {waited:?}");
        assert_eq!(hasher.queue_stats(), (17, 17));
        drop(held);
        assert_eq!(hasher.queue_stats(), (0, 17));
    }

    #[test]
    fn policy_rejects_short_long_and_weak() {
        let p = PasswordPolicy::default();
        assert!(p.check("short", &[]).is_err());
        assert!(p.check(&"x".repeat(129), &[]).is_err());
        assert!(p.check("password1", &[]).is_err());
        assert!(p.check("correct horse battery staple 42", &[]).is_ok());
    }

    #[test]
    fn reused_memory_matches_the_reference_verifier() {
        use argon2::PasswordVerifier as _;
        // Large before small and back: the kept area is reused at every size.
        let cases = [
            (Algorithm::Argon2id, Version::V0x13, 256, 1),
            (Algorithm::Argon2id, Version::V0x13, 32, 3),
            (Algorithm::Argon2i, Version::V0x13, 64, 2),
            (Algorithm::Argon2d, Version::V0x10, 16, 1),
        ];
        for (algorithm, version, m, t) in cases {
            let a = Argon2::new(algorithm, version, Params::new(m, t, 1, None).unwrap());
            let stored = a.hash_password(b"secret").unwrap().to_string();
            let parsed = PasswordHash::new(&stored).unwrap();
            assert!(a.verify_password(b"secret", &parsed).is_ok(), "{stored}");
            let params = Params::try_from(&parsed).unwrap();
            assert!(
                argon2_matches(b"secret", &parsed, params.clone()),
                "{stored}"
            );
            assert!(!argon2_matches(b"Secret", &parsed, params), "{stored}");
        }
        let stored = hash_blocking(b"pw").unwrap();
        let parsed = PasswordHash::new(&stored).unwrap();
        let params = Params::try_from(&parsed).unwrap();
        assert!(argon2_matches(b"pw", &parsed, params));
    }

    #[test]
    fn argon2_round_trip_and_bcrypt_upgrade() {
        let h = hash_blocking(b"pw-one").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            verify_blocking(b"pw-one", &h, HashAlgorithm::Argon2id).unwrap(),
            Verified::Yes
        );
        assert_eq!(
            verify_blocking(b"pw-two", &h, HashAlgorithm::Argon2id).unwrap(),
            Verified::No
        );
        let b = bcrypt::hash("legacy", 4).unwrap();
        assert_eq!(detect_algorithm(&b), Some(HashAlgorithm::Bcrypt));
        assert_eq!(
            verify_blocking(b"legacy", &b, HashAlgorithm::Bcrypt).unwrap(),
            Verified::YesNeedsRehash
        );
        assert_eq!(
            verify_blocking(b"nope", &b, HashAlgorithm::Bcrypt).unwrap(),
            Verified::No
        );
    }
}

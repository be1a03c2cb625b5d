//! Rate limiting: the GCRA (generic cell rate algorithm) decision, shared by every
//! backend, and the in-process limiter.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT) of the next
//! request. A quota of `limit` requests per `period` with a `burst` admits `burst`
//! requests at once and then one every `period / limit`. A key whose TAT is in the past
//! is indistinguishable from a key never seen, which is what makes pruning exact: idle
//! keys can be dropped without changing any future decision.
//!
//! The Redis backend (in the server crate) runs the same arithmetic in a Lua script; the
//! two must stay in step (see `gcra` and `GCRA_LUA` there).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// Microseconds since the Unix epoch. Redis `TIME` has the same resolution.
pub type Micros = i64;

/// `limit` requests per `period_us`, with `burst` admitted at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period_us: i64,
    pub burst: u32,
}

impl Quota {
    /// A quota whose burst equals its limit: `limit` at once, then evenly spread.
    pub fn per(limit: u32, period_secs: u64) -> Quota {
        Quota {
            limit,
            period_us: i64::try_from(period_secs)
                .unwrap_or(i64::MAX / 1_000_000)
                .saturating_mul(1_000_000),
            burst: limit,
        }
    }

    /// Time between two admitted requests at the sustained rate.
    pub fn emission_us(&self) -> i64 {
        (self.period_us / i64::from(self.limit.max(1))).max(1)
    }

    /// How far ahead of now the TAT may run before requests are refused.
    pub fn tolerance_us(&self) -> i64 {
        self.emission_us()
            .saturating_mul(i64::from(self.burst.max(1)))
    }
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests still admitted right now after this one.
    pub remaining: u32,
    /// Time until the full burst is available again.
    pub reset_us: i64,
    /// When refused: time until a request would be admitted.
    pub retry_after_us: i64,
}

/// One GCRA step. `tat` is the stored TAT (`None` for an unseen key); returns the
/// decision and the TAT to store (`None`: leave the stored value unchanged).
pub fn gcra(tat: Option<Micros>, now: Micros, quota: &Quota) -> (Decision, Option<Micros>) {
    let t = quota.emission_us();
    let tau = quota.tolerance_us();
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + t;
    let ahead = new_tat - now;
    if ahead > tau {
        let decision = Decision {
            allowed: false,
            remaining: 0,
            reset_us: tat - now,
            retry_after_us: ahead - tau,
        };
        return (decision, None);
    }
    let remaining = u32::try_from((tau - ahead) / t).unwrap_or(u32::MAX);
    let decision = Decision {
        allowed: true,
        remaining,
        reset_us: ahead,
        retry_after_us: 0,
    };
    (decision, Some(new_tat))
}

/// One key checked against one quota.
#[derive(Clone, Debug)]
pub struct Check {
    pub key: String,
    pub quota: Quota,
}

/// A backend could not decide (Redis unreachable, timed out, ...).
#[derive(Debug, thiserror::Error)]
#[error("rate limiter backend: {0}")]
pub struct BackendError(pub String);

/// Something that decides a list of checks.
#[async_trait]
pub trait RateLimitBackend: Send + Sync {
    /// Evaluates `checks` in order. Each admitted check consumes from its key; the
    /// evaluation stops at the first refusal, so the result is as long as the checks
    /// evaluated, and only its last element can be a refusal.
    async fn check(&self, checks: &[Check]) -> Result<Vec<Decision>, BackendError>;
}

/// One lock's worth of keys and their TATs.
type Shard = Mutex<HashMap<Box<str>, Micros>>;

/// Number of independently locked shards: enough that two cores rarely contend.
const SHARDS: usize = 64;

/// The in-process limiter: a sharded map from key to TAT. Memory stays bounded because
/// `prune` drops every key whose TAT has passed (such keys carry no information).
pub struct LocalLimiter {
    shards: Box<[Shard]>,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        LocalLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("keys", &self.len())
            .finish()
    }
}

/// The wall clock in microseconds.
pub fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl LocalLimiter {
    /// The shard of a key, by FNV-1a of its bytes: a shard needs no secret hash (a
    /// client crowding one shard costs lock contention, nothing more, while each
    /// shard's map hashes keys with a random SipHash key), and one keyed hash per
    /// decision is half the hashing.
    fn shard(&self, key: &str) -> &Shard {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        // The high bits mix best.
        &self.shards[(h >> 32) as usize % self.shards.len()]
    }

    /// `check` at a given time (tests drive the clock).
    pub fn check_at(&self, checks: &[Check], now: Micros) -> Vec<Decision> {
        let mut out = Vec::with_capacity(checks.len());
        for c in checks {
            // A poisoned shard only means another thread panicked mid-update of a plain
            // integer map; its data is still consistent.
            let mut map = self.shard(&c.key).lock().unwrap_or_else(|p| p.into_inner());
            // One lookup for a known key (the common case), a second only to insert.
            let decision = match map.get_mut(c.key.as_str()) {
                Some(slot) => {
                    let (decision, store) = gcra(Some(*slot), now, &c.quota);
                    if let Some(tat) = store {
                        *slot = tat;
                    }
                    decision
                }
                None => {
                    let (decision, store) = gcra(None, now, &c.quota);
                    if let Some(tat) = store {
                        map.insert(c.key.as_str().into(), tat);
                    }
                    decision
                }
            };
            drop(map);
            out.push(decision);
            if !decision.allowed {
                break;
            }
        }
        out
    }

    /// Drops keys that are idle at `now` and returns how many were dropped. Shards that
    /// shrank a lot give their memory back.
    pub fn prune_at(&self, now: Micros) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = map.len();
            map.retain(|_, tat| *tat > now);
            removed += before - map.len();
            if map.capacity() > 64 && map.len() < map.capacity() / 4 {
                map.shrink_to_fit();
            }
        }
        removed
    }

    /// Drops idle keys now.
    pub fn prune(&self) -> usize {
        self.prune_at(now_micros())
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl RateLimitBackend for LocalLimiter {
    async fn check(&self, checks: &[Check]) -> Result<Vec<Decision>, BackendError> {
        Ok(self.check_at(checks, now_micros()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    fn check(key: &str, quota: Quota) -> Check {
        Check {
            key: key.into(),
            quota,
        }
    }

    #[test]
    fn burst_then_steady_rate() {
        let q = Quota::per(5, 60); // one every 12 s, five at once
        let l = LocalLimiter::default();
        let t0 = 1_000 * SEC;
        for i in 0..5u32 {
            let d = l.check_at(&[check("k", q)], t0)[0];
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
        }
        let d = l.check_at(&[check("k", q)], t0)[0];
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, 12 * SEC);
        assert_eq!(d.reset_us, 60 * SEC);
        // One emission interval later exactly one more is admitted.
        assert!(!l.check_at(&[check("k", q)], t0 + 12 * SEC - 1)[0].allowed);
        let d = l.check_at(&[check("k", q)], t0 + 12 * SEC)[0];
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        // After a whole period the full burst is back.
        let later = t0 + 12 * SEC + 60 * SEC;
        assert_eq!(l.check_at(&[check("k", q)], later)[0].remaining, 4);
    }

    #[test]
    fn refused_requests_do_not_consume() {
        let q = Quota::per(1, 10);
        let l = LocalLimiter::default();
        assert!(l.check_at(&[check("k", q)], 0)[0].allowed);
        for _ in 0..100 {
            assert!(!l.check_at(&[check("k", q)], SEC)[0].allowed);
        }
        assert!(l.check_at(&[check("k", q)], 10 * SEC)[0].allowed);
    }

    #[test]
    fn evaluation_stops_at_first_refusal() {
        let tight = Quota::per(1, 60);
        let loose = Quota::per(100, 60);
        let l = LocalLimiter::default();
        let checks = [check("a", tight), check("b", loose)];
        assert_eq!(l.check_at(&checks, 0).len(), 2);
        let second = l.check_at(&checks, 0);
        assert_eq!(second.len(), 1, "b is not consumed once a refuses");
        assert!(!second[0].allowed);
        assert_eq!(l.check_at(&[check("b", loose)], 0)[0].remaining, 98);
    }

    #[test]
    fn keys_are_independent() {
        let q = Quota::per(1, 60);
        let l = LocalLimiter::default();
        assert!(l.check_at(&[check("a", q)], 0)[0].allowed);
        assert!(l.check_at(&[check("b", q)], 0)[0].allowed);
        assert!(!l.check_at(&[check("a", q)], 0)[0].allowed);
    }

    #[test]
    fn pruning_drops_only_idle_keys_and_changes_no_decision() {
        let q = Quota::per(2, 60); // emission 30 s
        let l = LocalLimiter::default();
        l.check_at(&[check("old", q)], 0);
        l.check_at(&[check("new", q)], 50 * SEC);
        assert_eq!(l.prune_at(40 * SEC), 1, "old's TAT (30 s) has passed");
        assert_eq!(l.len(), 1);
        // "new" keeps its state: one left, then refused.
        assert_eq!(l.check_at(&[check("new", q)], 50 * SEC)[0].remaining, 0);
        assert!(!l.check_at(&[check("new", q)], 50 * SEC)[0].allowed);
    }

    #[test]
    fn odd_periods_keep_integer_arithmetic() {
        let q = Quota::per(7, 60);
        assert_eq!(q.emission_us(), 8_571_428);
        let q = Quota {
            limit: 10,
            period_us: 60 * SEC,
            burst: 2,
        };
        let l = LocalLimiter::default();
        assert!(l.check_at(&[check("k", q)], 0)[0].allowed);
        assert!(l.check_at(&[check("k", q)], 0)[0].allowed);
        assert!(!l.check_at(&[check("k", q)], 0)[0].allowed);
    }
}

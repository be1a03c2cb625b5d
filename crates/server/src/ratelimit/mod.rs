//! Rate limiting for the server: configured rules (`config`, `policy`), decided by the
//! in-process limiter or by Redis (`redis`), with the configured behaviour when Redis
//! cannot answer.

pub mod config;
pub mod policy;
pub mod redis;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_core::ratelimit::{Check, Decision, LocalLimiter, Micros, RateLimitBackend};

use self::config::{FailureMode, RateLimitConfig};
use self::policy::Policy;
use self::redis::RedisLimiter;

/// The limiter could not decide and the failure mode says refuse.
#[derive(Debug)]
pub struct Unavailable;

/// How often a Redis failure is logged at most (the metric counts every one).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Rules plus the backend that decides them.
pub struct RateLimiter {
    pub policy: Policy,
    local: Arc<LocalLimiter>,
    redis: Option<RedisLimiter>,
    failure_mode: FailureMode,
    last_warning: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// Redis when `redis_url` is given, the in-process limiter otherwise.
    pub fn new(cfg: &RateLimitConfig, redis_url: Option<&str>) -> Result<RateLimiter, String> {
        let redis = match redis_url {
            Some(url) => Some(RedisLimiter::new(
                url,
                &cfg.redis_prefix,
                Duration::from_millis(cfg.redis_timeout_ms),
            )?),
            None => None,
        };
        Ok(RateLimiter {
            policy: Policy::from_config(cfg),
            local: Arc::new(LocalLimiter::default()),
            redis,
            failure_mode: cfg.failure_mode,
            last_warning: Mutex::new(None),
        })
    }

    /// The in-process limiter (primary without Redis, fallback with it).
    pub fn local(&self) -> Arc<LocalLimiter> {
        self.local.clone()
    }

    /// Which backend decides: `"memory"` or `"redis"`.
    pub fn backend_name(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// Whether Redis answers (`None` without Redis).
    pub async fn redis_ping(&self) -> Option<Result<(), String>> {
        let redis = self.redis.as_ref()?;
        Some(redis.ping().await.map_err(|e| e.0))
    }

    /// Decides `checks` at once when the limits are this instance's own (no Redis):
    /// the decision needs no waiting, so callers need not make a future for it.
    pub fn decide_locally(&self, checks: &[Check], now: Micros) -> Option<Vec<Decision>> {
        self.redis
            .is_none()
            .then(|| self.local.check_at(checks, now))
    }

    /// Decides `checks` (see `RateLimitBackend::check`) at `now` (Unix microseconds,
    /// read once per request by the caller; Redis uses its own clock).
    pub async fn check(&self, checks: &[Check], now: Micros) -> Result<Vec<Decision>, Unavailable> {
        let Some(redis) = &self.redis else {
            return Ok(self.local.check_at(checks, now));
        };
        match redis.check(checks).await {
            Ok(d) => Ok(d),
            Err(e) => {
                metrics::counter!("aegis_rate_limit_backend_errors_total").increment(1);
                self.warn(&e.0);
                match self.failure_mode {
                    FailureMode::FailClosed => Err(Unavailable),
                    FailureMode::FailOpen => {
                        metrics::counter!("aegis_rate_limit_fallback_total").increment(1);
                        Ok(self.local.check_at(checks, now))
                    }
                }
            }
        }
    }

    fn warn(&self, error: &str) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            let mode = match self.failure_mode {
                FailureMode::FailClosed => "refusing requests (fail_closed)",
                FailureMode::FailOpen => "using this instance's in-process limits (fail_open)",
            };
            tracing::warn!(%error, "rate limiter: Redis unavailable, {mode}");
        }
    }
}

//! The Redis backend: every decision is one round trip of an atomic Lua script that
//! runs the same GCRA as `aegis_core::ratelimit::gcra`, on Redis's clock, so any
//! number of instances share limits exactly and limits survive instance restarts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aegis_core::ratelimit::{BackendError, Check, Decision, RateLimitBackend};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The GCRA over a list of keys. ARGV holds (emission interval, tolerance) per key, in
/// microseconds. Evaluation stops at the first refusal; admitted keys store their new
/// TAT with an expiry at that TAT, so idle keys vanish from Redis by themselves.
/// Returns four integers per evaluated key: allowed, remaining, reset, retry-after.
const GCRA_LUA: &str = r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local out = {}
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i - 1])
  local tau = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + t
  local ahead = new_tat - now
  if ahead > tau then
    table.insert(out, 0)
    table.insert(out, 0)
    table.insert(out, tat - now)
    table.insert(out, ahead - tau)
    return out
  end
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil(ahead / 1000) + 1)
  table.insert(out, 1)
  table.insert(out, math.floor((tau - ahead) / t))
  table.insert(out, ahead)
  table.insert(out, 0)
end
return out
"#;

/// How often a lost connection is re-established at most.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Connection {
    manager: Option<ConnectionManager>,
    last_attempt: Option<Instant>,
}

/// Rate limits in Redis.
pub struct RedisLimiter {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    connection: Mutex<Connection>,
}

impl RedisLimiter {
    /// Prepares the client; the connection is made on first use and re-made after
    /// failures, so the server starts (and recovers) whether or not Redis is up.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisLimiter, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis_url: {e}"))?;
        Ok(RedisLimiter {
            client,
            prefix: prefix.to_string(),
            timeout,
            script: redis::Script::new(GCRA_LUA),
            connection: Mutex::new(Connection::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn manager(&self) -> Result<ConnectionManager, BackendError> {
        {
            let mut state = self.state();
            if let Some(m) = &state.manager {
                return Ok(m.clone());
            }
            if state
                .last_attempt
                .is_some_and(|t| t.elapsed() < RECONNECT_EVERY)
            {
                return Err(BackendError("redis: not connected".into()));
            }
            state.last_attempt = Some(Instant::now());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(RECONNECT_EVERY);
        let manager = tokio::time::timeout(
            self.timeout * 2,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| BackendError("redis: connect timed out".into()))?
        .map_err(|e| BackendError(format!("redis: connect: {e}")))?;
        self.state().manager = Some(manager.clone());
        Ok(manager)
    }

    /// Checks that Redis answers (start-up diagnostics and readiness).
    pub async fn ping(&self) -> Result<(), BackendError> {
        let mut conn = self.manager().await?;
        let reply: Result<String, _> =
            tokio::time::timeout(self.timeout, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| BackendError("redis: ping timed out".into()))?;
        reply
            .map(|_| ())
            .map_err(|e| BackendError(format!("redis: ping: {e}")))
    }
}

fn decode(reply: &[i64]) -> Vec<Decision> {
    reply
        .chunks_exact(4)
        .map(|c| Decision {
            allowed: c[0] == 1,
            remaining: u32::try_from(c[1]).unwrap_or(0),
            reset_us: c[2],
            retry_after_us: c[3],
        })
        .collect()
}

#[async_trait]
impl RateLimitBackend for RedisLimiter {
    async fn check(&self, checks: &[Check]) -> Result<Vec<Decision>, BackendError> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.manager().await?;
        let mut invocation = self.script.prepare_invoke();
        for c in checks {
            invocation
                .key(format!("{}{}", self.prefix, c.key))
                .arg(c.quota.emission_us())
                .arg(c.quota.tolerance_us());
        }
        let reply: Vec<i64> =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| BackendError("redis: timed out".into()))?
                .map_err(|e| BackendError(format!("redis: {e}")))?;
        let decisions = decode(&reply);
        if decisions.is_empty() || decisions.len() > checks.len() {
            return Err(BackendError("redis: malformed script reply".into()));
        }
        Ok(decisions)
    }
}

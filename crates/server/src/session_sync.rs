//! Keeps the session caches of several instances in step over Redis pub/sub: a logout
//! or revocation on one instance is published on `session.cache_channel`, and every
//! instance (this one included, harmlessly) forgets the session at once.
//!
//! Publishing never blocks a request: invalidations go through a bounded queue to one
//! publisher task. When the subscription drops, the local cache is cleared on
//! re-subscribing, because invalidations published meanwhile were missed.

use std::sync::Arc;
use std::time::Duration;

use aegis_core::session_cache::{Fanout, Invalidation, SessionCache};
use futures_util::StreamExt;
use tokio::sync::mpsc;

/// Invalidations waiting to be published; beyond this they are dropped (and counted),
/// leaving the cache TTL to bound staleness on other instances.
const QUEUE: usize = 4096;
/// Pause before reconnecting after Redis failed.
const RETRY: Duration = Duration::from_secs(1);
/// Longest wait for a Redis connection or a PUBLISH.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The sending half, installed as the cache's [`Fanout`].
struct RedisFanout {
    queue: mpsc::Sender<Invalidation>,
}

impl Fanout for RedisFanout {
    fn publish(&self, invalidation: Invalidation) {
        if self.queue.try_send(invalidation).is_err() {
            metrics::counter!("aegis_session_invalidations_dropped_total").increment(1);
            tracing::warn!(
                "session invalidation queue full: other instances see the change within session.cache_ttl_secs"
            );
        }
    }
}

/// Connects `cache` to the other instances through Redis at `url`.
pub fn start(cache: &Arc<SessionCache>, url: &str, channel: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| format!("redis_url: {e}"))?;
    let (queue, rx) = mpsc::channel(QUEUE);
    cache.set_fanout(Arc::new(RedisFanout { queue }));
    tokio::spawn(publish_loop(client.clone(), channel.to_string(), rx));
    tokio::spawn(subscribe_loop(client, channel.to_string(), cache.clone()));
    Ok(())
}

async fn publish_loop(
    client: redis::Client,
    channel: String,
    mut rx: mpsc::Receiver<Invalidation>,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    while let Some(invalidation) = rx.recv().await {
        let message = invalidation.encode();
        // One retry on a fresh connection, then give up on this message.
        for _ in 0..2 {
            if conn.is_none() {
                conn =
                    tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection())
                        .await
                        .ok()
                        .and_then(Result::ok);
            }
            let Some(c) = conn.as_mut() else { continue };
            let sent = tokio::time::timeout(
                REDIS_TIMEOUT,
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&message)
                    .query_async::<i64>(c),
            )
            .await;
            match sent {
                Ok(Ok(_)) => {
                    metrics::counter!("aegis_session_invalidations_published_total").increment(1);
                    break;
                }
                _ => conn = None,
            }
        }
        if conn.is_none() {
            metrics::counter!("aegis_session_invalidations_dropped_total").increment(1);
            tracing::warn!(
                "could not publish a session invalidation to Redis: other instances see it within session.cache_ttl_secs"
            );
        }
    }
}

async fn subscribe_loop(client: redis::Client, channel: String, cache: Arc<SessionCache>) {
    loop {
        match tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(mut pubsub)) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    // Whatever was published while we were not listening is lost.
                    cache.clear();
                    tracing::info!(%channel, "session cache: listening for invalidations");
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        match Invalidation::decode(&payload) {
                            Some(invalidation) => cache.forget(invalidation),
                            None => tracing::warn!("ignoring a malformed session invalidation"),
                        }
                    }
                    tracing::warn!("session cache: Redis subscription lost; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "session cache: subscribing failed"),
            },
            Ok(Err(e)) => tracing::warn!(error = %e, "session cache: Redis unreachable"),
            Err(_) => tracing::warn!("session cache: Redis connection timed out"),
        }
        // Until we listen again, other instances' revocations may go unseen here.
        cache.clear();
        tokio::time::sleep(RETRY).await;
    }
}

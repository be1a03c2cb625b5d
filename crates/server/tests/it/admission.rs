//! Hashing admission control: when every Argon2id slot and queue place is taken, logins
//! are refused with 429 and `Retry-After` (at once, or after `password.busy_delay_ms`),
//! nothing is counted against the account, and other endpoints stay responsive.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Server};

/// A server with one hashing slot and one queue place whose refusals wait `delay_ms`,
/// and erin registered. Only hashing admission may refuse here, not the rate limiter.
async fn one_hashing_slot(db: Db, delay_ms: &str) -> Server {
    let s = Server::start(
        db,
        &[
            ("AEGIS_PASSWORD_HASH_CONCURRENCY", "1"),
            ("AEGIS_PASSWORD_HASH_QUEUE", "1"),
            ("AEGIS_PASSWORD_BUSY_DELAY_MS", delay_ms),
            ("AEGIS_RATE_LIMIT_ENABLED", "false"),
        ],
    )
    .await;
    s.register("", "erin@example.com").await;
    s
}

/// What one login of a flood got back, and how long it took.
struct Answer {
    status: u16,
    retry_after: Option<reqwest::header::HeaderValue>,
    body: serde_json::Value,
    took: Duration,
}

/// `n` logins as erin with `password`, all at once.
fn login_flood(s: &Server, n: usize, password: &'static str) -> tokio::task::JoinSet<Answer> {
    let client = crate::harness::http_client().build().unwrap();
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        let url = format!("{}/api/v1/login", s.base);
        flood.spawn(async move {
            let started = Instant::now();
            let r = client
                .post(url)
                .json(&json!({"email": "erin@example.com", "password": password}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").cloned();
            let body = r.json().await.unwrap_or_default();
            Answer {
                status,
                retry_after,
                body,
                took: started.elapsed(),
            }
        });
    }
    flood
}

async fn login_flood_is_refused_fast(db: Db) {
    let s = one_hashing_slot(db, "0").await;
    let mut flood = login_flood(&s, 30, PASSWORD);
    // Meanwhile (the flood is in flight: a hash takes tens of milliseconds) the process
    // answers other requests promptly.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let health = s.req("GET", "/healthz", None, &[]).await;
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let (mut ok, mut busy) = (0, 0);
    while let Some(r) = flood.join_next().await {
        let Answer {
            status,
            retry_after,
            body,
            ..
        } = r.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                busy += 1;
                assert_eq!(
                    retry_after.as_ref().and_then(|v| v.to_str().ok()),
                    Some("1")
                );
                assert_eq!(body["error"], "rate_limited");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(ok >= 1, "some logins get through");
    assert!(busy >= 1, "a full queue refuses: {ok} ok, {busy} refused");
    // Refused logins never checked the password: nothing counts against the account.
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'login.failure'")
            .await,
        0
    );
    assert_eq!(
        s.db.scalar_i64("SELECT CAST(MAX(failed_attempts) AS BIGINT) FROM users")
            .await,
        0
    );
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'login.success'")
            .await,
        ok
    );
    // Once the flood is over, logins work again.
    assert_eq!(s.login("", "erin@example.com", PASSWORD).await.status, 200);
}
both_backends!(login_flood_is_refused_fast);

/// With the default refusal delay, a refused login is answered only after it, while the
/// rest of the server answers at once meanwhile; the refusal itself is the same 429.
async fn refusals_wait_the_busy_delay(db: Db) {
    let s = one_hashing_slot(db, "400").await;
    let mut flood = login_flood(&s, 12, "wrong password 1");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    assert_eq!(s.req("GET", "/healthz", None, &[]).await.status, 200);
    let health_took = started.elapsed();
    let (mut refused, mut checked) = (0, 0);
    while let Some(r) = flood.join_next().await {
        let Answer { status, took, .. } = r.unwrap();
        match status {
            429 => {
                refused += 1;
                assert!(took >= Duration::from_millis(400), "refused after {took:?}");
            }
            401 => checked += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused >= 1, "{checked} checked, {refused} refused");
    assert!(
        health_took < Duration::from_millis(300),
        "health check during the wait took {health_took:?}"
    );
    // Only the checked attempts count as failures.
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'login.failure'")
            .await,
        checked
    );
}
both_backends!(refusals_wait_the_busy_delay);

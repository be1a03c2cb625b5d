//! Session lifetime, fixation, listing and revocation.

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Server, cookie};

async fn get_session(s: &Server, token: &str) -> u16 {
    s.session_status(token).await
}

async fn absolute_expiry(db: Db) {
    let s = Server::start(db, &[("AEGIS_SESSION_ABSOLUTE_LIFETIME_SECS", "2")]).await;
    let (token, _) = s.signed_in("a@example.com").await;
    assert_eq!(get_session(&s, &token).await, 200);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(get_session(&s, &token).await, 401);
}
both_backends!(absolute_expiry);

async fn inactivity_expiry_with_sliding_refresh(db: Db) {
    let s = Server::start(
        db,
        &[
            ("AEGIS_SESSION_IDLE_TIMEOUT_SECS", "3"),
            ("AEGIS_SESSION_ACTIVITY_UPDATE_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    let (token, _) = s.signed_in("b@example.com").await;
    let seen0 = s.db.scalar_i64("SELECT last_seen_at FROM sessions").await;
    // A request inside the update interval does not write.
    assert_eq!(get_session(&s, &token).await, 200);
    assert_eq!(
        s.db.scalar_i64("SELECT last_seen_at FROM sessions").await,
        seen0
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(get_session(&s, &token).await, 200);
    assert!(s.db.scalar_i64("SELECT last_seen_at FROM sessions").await > seen0);
    // 3.6 s after login but only 1.8 s after the refresh: still alive.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(get_session(&s, &token).await, 200);
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert_eq!(get_session(&s, &token).await, 401);
}
both_backends!(inactivity_expiry_with_sliding_refresh);

async fn expired_sessions_are_purged(db: Db) {
    let s = Server::start(
        db,
        &[
            ("AEGIS_SESSION_ABSOLUTE_LIFETIME_SECS", "1"),
            ("AEGIS_SESSION_PURGE_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    s.signed_in("p@example.com").await;
    assert_eq!(s.db.scalar_i64("SELECT COUNT(*) FROM sessions").await, 1);
    let mut left = 1;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = s.db.scalar_i64("SELECT COUNT(*) FROM sessions").await;
        if left == 0 {
            break;
        }
    }
    assert_eq!(
        left, 0,
        "the background task should delete expired sessions"
    );
}
both_backends!(expired_sessions_are_purged);

async fn login_issues_a_new_token(db: Db) {
    let s = Server::start(db, &[]).await;
    s.register("", "c@example.com").await;
    // An attacker-planted cookie is not adopted.
    let planted = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = s
        .req(
            "POST",
            "/api/v1/login",
            Some(&json!({"email": "c@example.com", "password": PASSWORD})),
            &[("cookie", &cookie(planted))],
        )
        .await;
    assert_eq!(r.status, 200);
    let first = r.session_cookie().unwrap();
    assert_ne!(first, planted);
    let second = s
        .login("", "c@example.com", PASSWORD)
        .await
        .session_cookie()
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(get_session(&s, planted).await, 401);
}
both_backends!(login_issues_a_new_token);

async fn list_and_revoke_sessions(db: Db) {
    let s = Server::start(db, &[]).await;
    let (token, csrf) = s.signed_in("d@example.com").await;
    let other = s
        .req(
            "POST",
            "/api/v1/login",
            Some(&json!({"email": "d@example.com", "password": PASSWORD})),
            &[("user-agent", "second-device/1.0")],
        )
        .await
        .session_cookie()
        .unwrap();
    let third = s
        .login("", "d@example.com", PASSWORD)
        .await
        .session_cookie()
        .unwrap();
    let list = s
        .req(
            "GET",
            "/api/v1/sessions",
            None,
            &[("cookie", &cookie(&token))],
        )
        .await;
    assert_eq!(list.status, 200);
    let sessions = list.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|x| x["current"] == true).count(), 1);
    let second = sessions
        .iter()
        .find(|x| x["user_agent"] == "second-device/1.0")
        .expect("second device listed");
    assert_eq!(second["ip"], "127.0.0.1");
    assert!(second["created_at"].is_i64() && second["last_activity_at"].is_i64());
    let auth = [("cookie", cookie(&token)), ("x-csrf-token", csrf.clone())];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let id = second["id"].as_str().unwrap();
    let r = s
        .req("DELETE", &format!("/api/v1/sessions/{id}"), None, &auth)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(get_session(&s, &other).await, 401);
    let again = s
        .req("DELETE", &format!("/api/v1/sessions/{id}"), None, &auth)
        .await;
    assert_eq!(again.status, 404);
    let r = s.req("DELETE", "/api/v1/sessions", None, &auth).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["revoked"], 1);
    assert_eq!(get_session(&s, &third).await, 401);
    assert_eq!(get_session(&s, &token).await, 200);
}
both_backends!(list_and_revoke_sessions);

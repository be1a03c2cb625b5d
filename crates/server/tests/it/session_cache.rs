//! The cache of validated sessions: warm checks skip the database, yet logout,
//! revocation and password changes take effect at once, on this instance and (through
//! Redis pub/sub) on the others. Also the forward-auth check for reverse proxies.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Server, cookie, redis_url};

async fn status(s: &Server, token: &str) -> u16 {
    s.session_status(token).await
}

fn auth<'a>(token: &'a str, csrf: &'a str) -> [(String, String); 2] {
    [
        ("cookie".into(), cookie(token)),
        ("x-csrf-token".into(), csrf.to_string()),
    ]
}

fn pairs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A warm entry answers without the database: a row deleted behind Aegis's back is
/// still accepted until the entry's TTL, then refused. (This is why the TTL is short.)
async fn warm_checks_do_not_read_the_database(db: Db) {
    let s = Server::start(db, &[("AEGIS_SESSION_CACHE_TTL_SECS", "2")]).await;
    let (token, _) = s.signed_in("warm@example.com").await;
    assert_eq!(status(&s, &token).await, 200);
    s.db.execute("DELETE FROM sessions").await;
    assert_eq!(status(&s, &token).await, 200, "answered from the cache");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        status(&s, &token).await,
        401,
        "TTL over: the database says no"
    );
}
both_backends!(warm_checks_do_not_read_the_database);

/// With the cache off, the same deletion is seen at once.
async fn cache_can_be_turned_off(db: Db) {
    let s = Server::start(db, &[("AEGIS_SESSION_CACHE_TTL_SECS", "0")]).await;
    let (token, _) = s.signed_in("cold@example.com").await;
    assert_eq!(status(&s, &token).await, 200);
    s.db.execute("DELETE FROM sessions").await;
    assert_eq!(status(&s, &token).await, 401);
}
both_backends!(cache_can_be_turned_off);

/// Logout, revoking one session, revoking the others and changing the password all
/// end warm sessions immediately (a long TTL shows the cache is not what ends them).
async fn revocations_end_warm_sessions_at_once(db: Db) {
    let s = Server::start(db, &[("AEGIS_SESSION_CACHE_TTL_SECS", "300")]).await;
    let (main, csrf) = s.signed_in("rev@example.com").await;
    let login = || async { s.login("", "rev@example.com", PASSWORD).await };
    let second = login().await.session_cookie().unwrap();
    let third = login().await.session_cookie().unwrap();
    let fourth_login = login().await;
    let fourth = fourth_login.session_cookie().unwrap();
    let fourth_csrf = fourth_login.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    for t in [&main, &second, &third, &fourth] {
        assert_eq!(status(&s, t).await, 200);
        assert_eq!(status(&s, t).await, 200);
    }

    // Logout of the fourth.
    let h = auth(&fourth, &fourth_csrf);
    let r = s.req("POST", "/api/v1/logout", None, &pairs(&h)).await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    assert_eq!(status(&s, &fourth).await, 401, "logout");

    // Revoking the second by id, from the main session.
    let h = auth(&main, &csrf);
    let list = s.req("GET", "/api/v1/sessions", None, &pairs(&h)).await;
    let sessions = list.json()["sessions"].as_array().unwrap().clone();
    let me = s
        .req("GET", "/api/v1/session", None, &pairs(&h))
        .await
        .json();
    let second_id = {
        let second_me = s
            .req(
                "GET",
                "/api/v1/session",
                None,
                &[("cookie", &cookie(&second))],
            )
            .await
            .json();
        second_me["session"]["id"].as_str().unwrap().to_string()
    };
    assert!(sessions.iter().any(|x| x["id"] == second_id.as_str()));
    let r = s
        .req(
            "DELETE",
            &format!("/api/v1/sessions/{second_id}"),
            None,
            &pairs(&h),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(status(&s, &second).await, 401, "revoked by id");
    assert_eq!(status(&s, &third).await, 200);

    // Revoking the others keeps the current one.
    let r = s.req("DELETE", "/api/v1/sessions", None, &pairs(&h)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(status(&s, &third).await, 401, "revoked with the others");
    assert_eq!(status(&s, &main).await, 200, "the current session stays");
    assert_eq!(
        me["session"]["id"],
        sessions.iter().find(|x| x["current"] == true).unwrap()["id"]
    );

    // A password change ends every old session, the cached one included.
    let r = s
        .req(
            "POST",
            "/api/v1/password",
            Some(&json!({"current_password": PASSWORD, "new_password": "another staple horse battery 77"})),
            &pairs(&h),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(status(&s, &main).await, 401, "password change");
    let fresh = r.session_cookie().expect("a new session");
    assert_eq!(status(&s, &fresh).await, 200);
}
both_backends!(revocations_end_warm_sessions_at_once);

/// Polls `token` on `s` until it is refused; the time it took.
async fn refused_within(s: &Server, token: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if status(s, token).await == 401 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Two instances on one database: a logout on one ends the session warm in the other's
/// cache through Redis pub/sub; without Redis the other instance only learns of it
/// when its entry expires (the control that shows the test can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_reaches_other_instances_through_redis() {
    let Some(redis) = redis_url("session_cache::logout_reaches_other_instances_through_redis")
    else {
        return;
    };
    let channel = format!("aegis-test:sessions:{}", uuid::Uuid::new_v4());
    let shared = [
        ("AEGIS_SESSION_CACHE_TTL_SECS", "300"),
        ("AEGIS_REDIS_URL", redis.as_str()),
        ("AEGIS_SESSION_CACHE_CHANNEL", channel.as_str()),
        ("AEGIS_RATE_LIMIT_REDIS_PREFIX", channel.as_str()),
    ];
    let a = Server::start(Db::Sqlite, &shared).await;
    let b = a.another(&shared);
    let lone = a.another(&[("AEGIS_SESSION_CACHE_TTL_SECS", "300")]);

    let (token, csrf) = a.signed_in("pubsub@example.com").await;
    for s in [&a, &b, &lone] {
        assert_eq!(status(s, &token).await, 200);
    }
    let h = auth(&token, &csrf);
    let r = a.req("POST", "/api/v1/logout", None, &pairs(&h)).await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    assert_eq!(status(&a, &token).await, 401);
    let took = refused_within(&b, &token, Duration::from_secs(3)).await;
    assert!(took.is_some(), "instance b never heard of the logout");
    assert_eq!(
        status(&lone, &token).await,
        200,
        "without Redis the other instance keeps its entry until the TTL"
    );
}

/// The forward-auth check: identity headers for a valid session (cookie or bearer),
/// 401 with `WWW-Authenticate` otherwise, HEAD too, and nothing after logout.
async fn forward_auth_check(db: Db) {
    let s = Server::start(db, &[]).await;
    let r = s.req("GET", "/api/v1/forward-auth", None, &[]).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    assert!(r.header("x-aegis-user-id").is_none());

    let (token, csrf) = s.signed_in("fwd@example.com").await;
    let me = s
        .req(
            "GET",
            "/api/v1/session",
            None,
            &[("cookie", &cookie(&token))],
        )
        .await
        .json();
    for headers in [
        vec![("cookie".to_string(), cookie(&token))],
        vec![("authorization".to_string(), format!("Bearer {token}"))],
    ] {
        let r = s
            .req("GET", "/api/v1/forward-auth", None, &pairs(&headers))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.is_empty());
        assert_eq!(
            r.header("x-aegis-user-id").as_deref(),
            me["user"]["id"].as_str()
        );
        assert_eq!(
            r.header("x-aegis-email").as_deref(),
            Some("fwd@example.com")
        );
        assert_eq!(r.header("x-aegis-roles").as_deref(), Some("member"));
        assert_eq!(r.header("x-aegis-tenant").as_deref(), Some("default"));
        assert_eq!(r.header("x-aegis-auth-method").as_deref(), Some("password"));
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    }
    let r = s
        .req(
            "HEAD",
            "/api/v1/forward-auth",
            None,
            &[("cookie", &cookie(&token))],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-aegis-email").as_deref(),
        Some("fwd@example.com")
    );

    let bogus = "B".repeat(43);
    let r = s
        .req(
            "GET",
            "/api/v1/forward-auth",
            None,
            &[("cookie", &cookie(&bogus))],
        )
        .await;
    assert_eq!(r.status, 401);

    let h = auth(&token, &csrf);
    s.req("POST", "/api/v1/logout", None, &pairs(&h)).await;
    let r = s
        .req(
            "GET",
            "/api/v1/forward-auth",
            None,
            &[("cookie", &cookie(&token))],
        )
        .await;
    assert_eq!(r.status, 401);
}
both_backends!(forward_auth_check);

/// The identity checks are answered by the frame itself, as the routes would: `HEAD`
/// gets the headers of `GET` without the body, other methods get 405 with `Allow`.
/// The default rate-limit rule leaves them alone (a proxy asks before every request it
/// passes on) and still covers the other routes.
async fn identity_checks_answer_like_routes(db: Db) {
    // The default rules, which limit every route by IP, on.
    let s = Server::start(db, &[("AEGIS_RATE_LIMIT_ENABLED", "true")]).await;
    let (token, csrf) = s.signed_in("heads@example.com").await;
    let c = cookie(&token);
    let get = s
        .req("GET", "/api/v1/session", None, &[("cookie", &c)])
        .await;
    assert_eq!(get.status, 200, "{}", get.text);
    assert_eq!(get.json()["user"]["email"], "heads@example.com");
    assert_eq!(
        get.header("content-length"),
        Some(get.text.len().to_string())
    );
    assert_eq!(
        get.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(get.header("x-request-id").is_some());
    assert!(get.header("ratelimit").is_none());
    for _ in 0..130 {
        let r = s
            .req("GET", "/api/v1/forward-auth", None, &[("cookie", &c)])
            .await;
        assert_eq!(r.status, 200, "more checks than the default rule's 120");
        assert!(r.header("x-ratelimit-limit").is_none());
    }
    let list = s
        .req("GET", "/api/v1/sessions", None, &[("cookie", &c)])
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.header("x-ratelimit-limit").as_deref(), Some("120"));
    let head = s
        .req("HEAD", "/api/v1/session", None, &[("cookie", &c)])
        .await;
    assert_eq!(head.status, 200);
    assert!(head.text.is_empty());
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_eq!(head.header("content-type"), get.header("content-type"));

    let h = auth(&token, &csrf);
    for path in ["/api/v1/session", "/api/v1/forward-auth"] {
        for method in ["POST", "DELETE"] {
            let r = s.req(method, path, None, &pairs(&h)).await;
            assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
            let allow = r.header("allow").unwrap_or_default();
            assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
        }
    }
    let anonymous = s.req("HEAD", "/api/v1/session", None, &[]).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("www-authenticate").is_some());
}
both_backends!(identity_checks_answer_like_routes);

//! CSRF: synchronizer token for cookie sessions, Origin check, bearer exemption, CORS.

use serde_json::json;

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Server, cookie};

async fn csrf_enforced_for_cookie_sessions(db: Db) {
    let s = Server::start(
        db,
        &[("AEGIS_CORS_ALLOWED_ORIGINS", "https://app.example.com")],
    )
    .await;
    let (token, _) = s.signed_in("a@example.com").await;
    let c = cookie(&token);
    let fetched = s.req("GET", "/api/v1/csrf", None, &[("cookie", &c)]).await;
    assert_eq!(fetched.status, 200);
    let csrf = fetched.json()["csrf_token"].as_str().unwrap().to_string();

    let none = s
        .req("DELETE", "/api/v1/sessions", None, &[("cookie", &c)])
        .await;
    assert_eq!(none.status, 403);
    assert!(none.json()["message"].as_str().unwrap().contains("CSRF"));
    let wrong = s
        .req(
            "DELETE",
            "/api/v1/sessions",
            None,
            &[("cookie", &c), ("x-csrf-token", "nope")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let ok = s
        .req(
            "DELETE",
            "/api/v1/sessions",
            None,
            &[("cookie", &c), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    let evil = s
        .req(
            "DELETE",
            "/api/v1/sessions",
            None,
            &[
                ("cookie", &c),
                ("x-csrf-token", &csrf),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(evil.status, 403);
    assert!(
        evil.json()["message"]
            .as_str()
            .unwrap()
            .contains("cross-origin")
    );
    let cross_site = s
        .req(
            "DELETE",
            "/api/v1/sessions",
            None,
            &[
                ("cookie", &c),
                ("x-csrf-token", &csrf),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(cross_site.status, 403);
    let allowed = s
        .req(
            "DELETE",
            "/api/v1/sessions",
            None,
            &[
                ("cookie", &c),
                ("x-csrf-token", &csrf),
                ("origin", "https://app.example.com"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed
            .header("access-control-allow-credentials")
            .as_deref(),
        Some("true")
    );

    // Login from a foreign origin is refused too (login CSRF).
    let r = s
        .req(
            "POST",
            "/api/v1/login",
            Some(&json!({"email": "a@example.com", "password": PASSWORD})),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, 403);
}
both_backends!(csrf_enforced_for_cookie_sessions);

async fn bearer_clients_are_exempt(db: Db) {
    let s = Server::start(db, &[]).await;
    s.register("", "b@example.com").await;
    let r = s
        .req(
            "POST",
            "/api/v1/login",
            Some(&json!({"email": "b@example.com", "password": PASSWORD, "session_delivery": "token"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").is_none());
    let token = r.json()["session_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let me = s
        .req(
            "GET",
            "/api/v1/session",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(me.status, 200);
    let del = s
        .req(
            "DELETE",
            "/api/v1/sessions",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
}
both_backends!(bearer_clients_are_exempt);

async fn preflight_only_for_listed_origins(db: Db) {
    let s = Server::start(
        db,
        &[("AEGIS_CORS_ALLOWED_ORIGINS", "https://app.example.com")],
    )
    .await;
    let ok = s
        .req(
            "OPTIONS",
            "/api/v1/login",
            None,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert_eq!(
        ok.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let expose = ok
        .header("access-control-expose-headers")
        .unwrap_or_default();
    let bad = s
        .req(
            "OPTIONS",
            "/api/v1/login",
            None,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert!(bad.header("access-control-allow-origin").is_none());
    let get = s
        .req(
            "GET",
            "/healthz",
            None,
            &[("origin", "https://app.example.com")],
        )
        .await;
    let expose = if expose.is_empty() {
        get.header("access-control-expose-headers")
            .unwrap_or_default()
    } else {
        expose
    };
    assert!(expose.contains("ratelimit"), "{expose}");
}
both_backends!(preflight_only_for_listed_origins);

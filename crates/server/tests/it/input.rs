//! Bad input: clear 4xx answers, nothing written.

use serde_json::json;

use crate::both_backends;
use crate::harness::{Db, Server};

async fn bad_input_is_refused_cleanly(db: Db) {
    let s = Server::start(db, &[("AEGIS_HTTP_MAX_BODY_BYTES", "2048")]).await;
    let malformed = s
        .raw(
            "POST",
            "/api/v1/register",
            "application/json",
            b"{\"email\": ".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["error"], "bad_request");
    assert!(malformed.json()["request_id"].is_string());

    let wrong_type = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "a@example.com", "password": 12345678901u64})),
            &[],
        )
        .await;
    assert_eq!(wrong_type.status, 422);
    assert!(
        wrong_type.json()["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );
    assert!(
        !wrong_type.text.contains("12345678901"),
        "values are not echoed"
    );

    let unknown = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "a@example.com", "password": "correct horse battery staple 42", "admin": true})),
            &[],
        )
        .await;
    assert_eq!(unknown.status, 422);
    assert!(
        unknown.json()["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `admin`")
    );

    let huge = json!({"email": "a@example.com", "password": "x".repeat(4096)});
    let big = s.req("POST", "/api/v1/register", Some(&huge), &[]).await;
    assert_eq!(big.status, 413);

    let no_type = s
        .raw("POST", "/api/v1/register", "text/plain", b"{}".to_vec())
        .await;
    assert_eq!(no_type.status, 415);

    let missing = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "a@example.com"})),
            &[],
        )
        .await;
    assert_eq!(missing.status, 422);

    assert_eq!(
        s.req("GET", "/api/v1/nothing-here", None, &[]).await.status,
        404
    );
    let not_allowed = s.req("PUT", "/api/v1/login", None, &[]).await;
    assert_eq!(not_allowed.status, 405);

    assert_eq!(s.db.scalar_i64("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events").await,
        0
    );

    // Health and readiness.
    assert_eq!(s.req("GET", "/healthz", None, &[]).await.status, 200);
    let ready = s.req("GET", "/readyz", None, &[]).await;
    assert_eq!(ready.status, 200);
    // A JSON answer carries the headers OWASP names for API responses; any other
    // answer (here one with an `Allow` header) also those meant for documents.
    for (h, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("cache-control", "no-store"),
        ("content-type", "application/json"),
    ] {
        assert_eq!(ready.header(h).as_deref(), Some(value), "{h}");
    }
    assert!(ready.header("x-request-id").is_some());
    assert!(ready.header("referrer-policy").is_none());
    for (h, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        assert_eq!(not_allowed.header(h).as_deref(), Some(value), "{h}");
    }
    assert!(
        not_allowed
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("form-action 'self'"))
    );
    assert!(not_allowed.header("x-request-id").is_some());
    for answer in [&ready, &not_allowed] {
        assert!(
            answer.header("strict-transport-security").is_none(),
            "no HSTS in development"
        );
    }
}
both_backends!(bad_input_is_refused_cleanly);

/// A client's plain `X-Request-Id` is kept (answer, error body, audit entry); one with
/// anything but letters, digits and `-_.:`, or longer than 128, is replaced by a fresh
/// id everywhere.
async fn client_request_ids_are_kept_only_when_plain(db: Db) {
    let s = Server::start(db, &[]).await;
    let wrong = json!({"email": "nobody@example.com", "password": "wrong password here 123"});
    let kept = s
        .req(
            "POST",
            "/api/v1/login",
            Some(&wrong),
            &[("x-request-id", "trace-42.a:b_c")],
        )
        .await;
    assert_eq!(kept.status, 401);
    assert_eq!(
        kept.header("x-request-id").as_deref(),
        Some("trace-42.a:b_c")
    );
    assert_eq!(kept.json()["request_id"], "trace-42.a:b_c");
    let long = "x".repeat(129);
    for bad in ["a\"b", "<script>", long.as_str()] {
        let r = s
            .req(
                "POST",
                "/api/v1/login",
                Some(&wrong),
                &[("x-request-id", bad)],
            )
            .await;
        assert_eq!(r.status, 401);
        let id = r.header("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert!(id.parse::<uuid::Uuid>().is_ok(), "a fresh UUID, not {id:?}");
        assert_eq!(r.json()["request_id"], id.as_str());
    }
    let mut ids =
        s.db.strings("SELECT request_id FROM audit_events WHERE action = 'login.failure'")
            .await;
    assert_eq!(ids.len(), 4);
    ids.retain(|id| id != "trace-42.a:b_c");
    assert_eq!(ids.len(), 3, "the plain id is recorded once");
    assert!(ids.iter().all(|id| id.parse::<uuid::Uuid>().is_ok()));
}
both_backends!(client_request_ids_are_kept_only_when_plain);

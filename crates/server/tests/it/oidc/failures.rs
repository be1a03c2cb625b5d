//! Sign-ins that must fail, each with no session created and an audit entry naming the
//! reason: tampered, missing or foreign state; a replayed code; ID tokens that lie
//! (wrong nonce, `alg: none`, unknown key, expired, ...); `return_to` to a foreign
//! origin; a provider that does not answer.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::json;

use super::idp::Browser;
use super::{Setup, query_param, with_param};
use crate::both_backends;
use crate::harness::Db;

async fn state_checks(db: Db) {
    let Some(s) = Setup::new(db, "state_checks", &[]).await else {
        return;
    };
    s.configure(json!({})).await;
    let mut browser = Browser::new();
    let callback = s.until_callback(&mut browser, "").await;
    let state = query_param(&callback, "state").unwrap();

    // A tampered state matches no flow.
    let mut tampered = state.clone();
    tampered.replace_range(0..1, if state.starts_with('A') { "B" } else { "A" });
    let r = browser
        .get(&with_param(&callback, "state", Some(&tampered)))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"], "bad_request");
    // No state at all.
    let r = browser.get(&with_param(&callback, "state", None)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("without state")
    );
    // The right state from another browser (no flow cookie): a login-CSRF attempt.
    let mut attacker = Browser::new();
    let r = attacker.get(&callback).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("another browser")
    );
    // That consumed the flow: the real browser must start again.
    let r = browser.get(&callback).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );

    assert_eq!(s.oidc_sessions().await, 0);
    assert_eq!(
        s.failure_reasons().await,
        [
            "state_invalid",
            "state_missing",
            "browser_mismatch",
            "state_invalid"
        ]
    );
    // The provider refusing: the error code is recorded, nothing else.
    let callback = s.until_callback(&mut browser, "").await;
    let denied = with_param(
        &with_param(&callback, "code", None),
        "error",
        Some("access_denied"),
    );
    let r = browser.get(&denied).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let last = s.audit_details("oidc.failure").await.pop().unwrap();
    assert_eq!(last["reason"], "provider_error");
    assert_eq!(last["error"], "access_denied");
    assert_eq!(s.oidc_sessions().await, 0);
}
both_backends!(state_checks);

async fn replayed_code(db: Db) {
    let Some(s) = Setup::new(db, "replayed_code", &[]).await else {
        return;
    };
    s.configure(json!({})).await;
    let mut browser = Browser::new();
    let callback = s.until_callback(&mut browser, "").await;
    assert_eq!(browser.get(&callback).await.status, 303);
    assert_eq!(s.oidc_sessions().await, 1);
    // The same callback URL again: its flow is gone.
    let r = browser.get(&callback).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // The old code smuggled into a fresh flow of the same browser: the provider refuses
    // it (used already, and issued for another PKCE challenge).
    let fresh = s.until_callback(&mut browser, "").await;
    let old_code = query_param(&callback, "code").unwrap();
    let r = browser
        .get(&with_param(&fresh, "code", Some(&old_code)))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("refused the authorization code")
    );
    assert_eq!(
        s.oidc_sessions().await,
        1,
        "no session from a replayed code"
    );
    assert_eq!(
        s.failure_reasons().await,
        ["state_invalid", "code_rejected"]
    );
}
both_backends!(replayed_code);

async fn lying_id_tokens(db: Db) {
    let Some(s) = Setup::new(db, "lying_id_tokens", &[]).await else {
        return;
    };
    s.configure(json!({})).await;
    let cases = [
        ("nonce", "id_token_nonce"),
        ("alg_none", "id_token_algorithm"),
        ("unknown_key", "id_token_unknown_key"),
        ("expired", "id_token_expired"),
        ("wrong_aud", "id_token_audience"),
        ("wrong_iss", "id_token_issuer"),
        ("bad_signature", "id_token_signature"),
        ("future_iat", "id_token_not_yet_valid"),
    ];
    for (mode, reason) in cases {
        s.idp.misbehave(Some(mode)).await;
        let r = s.sign_in(&mut Browser::new(), "").await;
        assert_eq!(r.status, 401, "{mode}: {}", r.text);
        assert_eq!(
            r.json()["message"],
            "the identity provider's ID token failed verification"
        );
        assert!(
            r.header("set-cookie")
                .is_none_or(|c| !c.contains("aegis_session"))
        );
        assert_eq!(
            s.failure_reasons().await.last().map(String::as_str),
            Some(reason),
            "{mode}"
        );
    }
    assert_eq!(s.oidc_sessions().await, 0);
    assert_eq!(
        s.aegis
            .db
            .scalar_i64("SELECT COUNT(*) FROM oidc_identities")
            .await,
        0,
        "no account was linked or created"
    );
    // The unknown key made Aegis refresh the JWKS once before refusing.
    assert!(s.idp.stats().await["jwks"].as_i64().unwrap() >= 2);
    // Behaving again, the provider signs the user in.
    s.idp.misbehave(None).await;
    assert_eq!(s.sign_in(&mut Browser::new(), "").await.status, 303);
}
both_backends!(lying_id_tokens);

async fn foreign_return_to(db: Db) {
    let Some(s) = Setup::new(db, "foreign_return_to", &[]).await else {
        return;
    };
    s.configure(json!({})).await;
    for bad in [
        "https://evil.example/",
        "//evil.example/x",
        "https://app.example.com.evil.example/",
        "javascript:alert(1)",
    ] {
        let q = url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>();
        let r = Browser::new()
            .get(&s.start_url(&format!("?return_to={q}")))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.header("location").is_none());
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .starts_with("return_to")
        );
    }
    assert_eq!(
        s.idp.stats().await["authorization"],
        0,
        "never sent to the provider"
    );
    assert_eq!(s.failure_reasons().await.len(), 4);
    assert!(
        s.failure_reasons()
            .await
            .iter()
            .all(|r| r == "return_to_refused")
    );
    assert_eq!(
        s.aegis
            .db
            .scalar_i64("SELECT COUNT(*) FROM oidc_login_states")
            .await,
        0
    );
    // Unknown query parameters and unknown providers are refused plainly.
    let r = Browser::new().get(&s.start_url("?next=/x")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = Browser::new()
        .get(&format!("{}/auth/oidc/nope/start", s.aegis.base))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
}
both_backends!(foreign_return_to);

async fn provider_unreachable(db: Db) {
    let Some(s) = Setup::new(
        db,
        "provider_unreachable",
        &[
            ("AEGIS_OIDC_HTTP_TIMEOUT_SECS", "1"),
            ("AEGIS_OIDC_BREAKER_FAILURES", "2"),
        ],
    )
    .await
    else {
        return;
    };
    // A provider that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", silent.local_addr().unwrap());
    s.configure(json!({"issuer": issuer})).await;
    for attempt in 0..2 {
        let t = Instant::now();
        let r = Browser::new().get(&s.start_url("")).await;
        let took = t.elapsed();
        assert_eq!(r.status, 503, "attempt {attempt}: {}", r.text);
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("unreachable")
        );
        assert!(r.header("retry-after").is_some());
        assert!(
            took < Duration::from_secs(4),
            "bounded by the timeout: {took:?}"
        );
    }
    // The breaker is open now: the answer comes without waiting for the provider.
    let t = Instant::now();
    let r = Browser::new().get(&s.start_url("")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(s.oidc_sessions().await, 0);
    assert_eq!(
        s.failure_reasons().await,
        [
            "provider_unavailable",
            "provider_unavailable",
            "provider_unavailable"
        ]
    );
    // The server itself stayed responsive.
    assert_eq!(s.aegis.req("GET", "/healthz", None, &[]).await.status, 200);
    drop(silent);
}
both_backends!(provider_unreachable);

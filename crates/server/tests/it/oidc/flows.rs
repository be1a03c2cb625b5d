//! Sign-ins that succeed: the happy path with every protocol detail checked, roles
//! from groups re-evaluated at each sign-in, the refresh token stored encrypted, a
//! provider key rotation, and the other client authentication methods.

use serde_json::json;

use super::idp::Browser;
use super::{APP_ORIGIN, Setup, query_param, session_token};
use crate::both_backends;
use crate::harness::Db;

async fn happy_path(db: Db) {
    let Some(s) = Setup::new(db, "happy_path", &[]).await else {
        return;
    };
    s.configure(json!({})).await;
    let mut browser = Browser::new();
    let start = browser
        .get(&s.start_url(&format!("?return_to={APP_ORIGIN}/dashboard%3Ftab%3D1")))
        .await;
    assert_eq!(start.status, 303, "{}", start.text);
    let auth_url = start.header("location").expect("location");
    assert!(auth_url.starts_with(&format!("{}/auth?", s.idp.issuer)));
    assert_eq!(
        query_param(&auth_url, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query_param(&auth_url, "client_id").as_deref(),
        Some("aegis")
    );
    assert_eq!(
        query_param(&auth_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&auth_url, "code_challenge").map(|c| c.len()),
        Some(43)
    );
    assert_eq!(query_param(&auth_url, "state").map(|c| c.len()), Some(43));
    assert_eq!(query_param(&auth_url, "nonce").map(|c| c.len()), Some(43));
    assert_eq!(
        query_param(&auth_url, "redirect_uri"),
        Some(s.callback_prefix())
    );
    // The flow cookie: HttpOnly, Secure, SameSite=Lax, short-lived.
    let flow_cookie = start.header("set-cookie").expect("flow cookie");
    assert!(
        flow_cookie.starts_with("__Host-aegis_oidc_"),
        "{flow_cookie}"
    );
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(flow_cookie.contains(attr), "{attr} in {flow_cookie}");
    }
    // Nothing is stored in clear: no state, nonce or verifier in the database.
    let state = query_param(&auth_url, "state").unwrap();
    let stored = s
        .aegis
        .db
        .strings("SELECT verifier_enc FROM oidc_login_states")
        .await;
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].starts_with("dev."),
        "verifier encrypted: {}",
        stored[0]
    );

    let callback = match browser.follow(&auth_url, Some(&s.callback_prefix())).await {
        Err(c) => c,
        Ok(r) => panic!("provider did not redirect back: {}", r.text),
    };
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(state.as_str())
    );
    let done = browser.get(&callback).await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(
        done.header("location").as_deref(),
        Some(format!("{APP_ORIGIN}/dashboard?tab=1").as_str())
    );
    let cookies: Vec<String> = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Host-aegis_session="))
        .expect("session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(session_cookie.contains(attr), "{attr} in {session_cookie}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-aegis_oidc_") && c.contains("Max-Age=0")),
        "the flow cookie is deleted: {cookies:?}"
    );
    // No token of ours ever travels in a URL.
    let token = session_token(&done).expect("session token");
    for url in &browser.visited {
        assert!(!url.contains(&token), "session token in a URL: {url}");
    }
    assert!(!done.header("location").unwrap().contains(&token));

    let me = s.whoami(&token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let me = me.json();
    assert_eq!(me["user"]["email"], "alice@example.com");
    assert_eq!(me["roles"], json!(["member", "admin", "advisor"]));
    assert_eq!(me["session"]["auth_method"], "oidc");

    // Database state: one user, linked by (provider, sub), the address verified.
    let db = &s.aegis.db;
    assert_eq!(
        db.strings("SELECT subject FROM oidc_identities").await,
        ["alice"]
    );
    assert_eq!(
        db.scalar_i64(
            "SELECT COUNT(*) FROM users WHERE email = 'alice@example.com' AND email_verified_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(s.oidc_sessions().await, 1);
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM oidc_login_states")
            .await,
        0,
        "the flow is consumed"
    );
    // The provider's refresh token is kept, encrypted, never in clear.
    let issued = s.idp.last_tokens().await["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string();
    let stored = db
        .strings("SELECT refresh_token_enc FROM oidc_identities")
        .await;
    assert!(stored[0].starts_with("dev."), "{}", stored[0]);
    assert!(!stored[0].contains(&issued));
    // Audit: start, provisioning, link and login, in order.
    assert_eq!(s.audit_details("oidc.start").await.len(), 1);
    let register = s.audit_details("user.register").await;
    assert_eq!(register[0]["method"], "oidc");
    assert_eq!(s.audit_details("oidc.link").await.len(), 1);
    let logins = s.audit_details("login.success").await;
    let oidc_login = logins
        .iter()
        .find(|d| d["method"] == "oidc")
        .expect("login");
    assert_eq!(oidc_login["provider"], "corp");
    assert_eq!(oidc_login["roles"], json!(["admin", "advisor"]));
    assert!(s.failure_reasons().await.is_empty());

    // The same person again, from a new browser, after the admin narrowed the rules:
    // the same account, and the roles follow the rules of this sign-in.
    s.configure(
        json!({"role_rules": [{"claim": "groups", "value": "advisors", "role": "advisor"}]}),
    )
    .await;
    let mut other = Browser::new();
    let again = s.sign_in(&mut other, "").await;
    assert_eq!(again.status, 303, "{}", again.text);
    assert_eq!(again.header("location").as_deref(), Some("/"));
    let token2 = session_token(&again).expect("second session");
    assert_ne!(token, token2);
    let me2 = s.whoami(&token2).await.json();
    assert_eq!(me2["user"]["id"], me["user"]["id"]);
    assert_eq!(me2["roles"], json!(["member", "advisor"]));
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM users WHERE email = 'alice@example.com'")
            .await,
        1
    );
    // The first session keeps what it was granted until it ends.
    assert_eq!(s.whoami(&token).await.json()["roles"], me["roles"]);
    // A provider sign-in ends like any session.
    let logout = s
        .aegis
        .req(
            "POST",
            "/api/v1/logout",
            None,
            &[
                ("cookie", &crate::harness::cookie(&token2)),
                ("x-csrf-token", &csrf_of(&s, &token2).await),
            ],
        )
        .await;
    assert_eq!(logout.status, 204, "{}", logout.text);
    assert_eq!(s.whoami(&token2).await.status, 401);
}
both_backends!(happy_path);

async fn csrf_of(s: &Setup, token: &str) -> String {
    let r = s
        .aegis
        .req(
            "GET",
            "/api/v1/csrf",
            None,
            &[("cookie", &crate::harness::cookie(token))],
        )
        .await;
    r.json()["csrf_token"].as_str().expect("csrf").to_string()
}

async fn key_rotation(db: Db) {
    let Some(s) = Setup::new(db, "key_rotation", &[]).await else {
        return;
    };
    s.configure(json!({})).await;
    assert_eq!(s.sign_in(&mut Browser::new(), "").await.status, 303);
    let jwks_before = s.idp.stats().await["jwks"].as_i64().unwrap();
    assert_eq!(jwks_before, 1);
    // The provider signs with a new key: the cached JWKS lacks it, one refresh finds it.
    assert_eq!(s.idp.rotate().await["kid"], "k2");
    let r = s.sign_in(&mut Browser::new(), "").await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(s.idp.stats().await["jwks"].as_i64().unwrap(), 2);
    // And the next sign-in uses the cache again.
    assert_eq!(s.sign_in(&mut Browser::new(), "").await.status, 303);
    assert_eq!(s.idp.stats().await["jwks"].as_i64().unwrap(), 2);
    assert_eq!(s.oidc_sessions().await, 3);
}
both_backends!(key_rotation);

async fn client_auth_methods(db: Db) {
    let Some(s) = Setup::new(db, "client_auth_methods", &[]).await else {
        return;
    };
    // client_secret_post, with claims read from userinfo as well.
    s.configure(json!({"client_id": "aegis-post", "client_auth": "client_secret_post", "fetch_userinfo": true}))
        .await;
    let r = s.sign_in(&mut Browser::new(), "?login_hint=bob").await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(s.idp.stats().await["userinfo"], 1);
    let me = s.whoami(&session_token(&r).unwrap()).await.json();
    assert_eq!(me["user"]["email"], "bob@example.com");
    assert_eq!(
        s.aegis
            .db
            .scalar_i64(
                "SELECT COUNT(*) FROM users WHERE email = 'bob@example.com' AND email_verified_at IS NULL"
            )
            .await,
        1,
        "the provider did not verify bob's address"
    );

    // private_key_jwt, configured through the CLI with the key in a file and no
    // shared secret at all.
    let key = s.idp.client_key("aegis-jwt").await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("client.pem");
    std::fs::write(&key_file, key["private_key_pem"].as_str().unwrap()).unwrap();
    let settings_file = dir.path().join("corp.json");
    std::fs::write(
        &settings_file,
        json!({
            "issuer": s.idp.issuer, "client_id": "aegis-jwt", "client_auth": "private_key_jwt",
            "private_key_id": key["kid"], "scopes": ["openid", "email"],
        })
        .to_string(),
    )
    .unwrap();
    let out = s.aegis.cli(
        &[
            "oidc",
            "set",
            "corp",
            "--file",
            settings_file.to_str().unwrap(),
            "--private-key-file",
            key_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = s
        .aegis
        .db
        .strings("SELECT private_key_enc FROM oidc_providers")
        .await;
    assert!(!stored[0].contains("PRIVATE KEY"), "key stored encrypted");
    let listed = s.aegis.cli(&["oidc", "list"], None);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("corp") && listed.contains("aegis-jwt"),
        "{listed}"
    );
    assert!(!listed.contains("PRIVATE"), "{listed}");
    let r = s.sign_in(&mut Browser::new(), "?login_hint=alice").await;
    assert_eq!(r.status, 303, "{}", r.text);
    let me = s.whoami(&session_token(&r).unwrap()).await.json();
    assert_eq!(me["user"]["email"], "alice@example.com");
    // The admin API shows the provider without its key.
    let view = s.admin("GET", "/api/v1/admin/oidc/providers", None).await;
    assert_eq!(view.status, 200);
    assert!(!view.text.contains("PRIVATE KEY"), "{}", view.text);
    assert_eq!(view.json()["providers"][0]["private_key_set"], true);
}
both_backends!(client_auth_methods);

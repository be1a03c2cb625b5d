//! Whose account a provider sign-in lands in: linking to an existing account only by a
//! verified address on both sides and an explicit switch, just-in-time provisioning
//! and its switch, a provider without an address; providers per tenant; the admin API.

use serde_json::json;

use super::idp::Browser;
use super::{Setup, session_token};
use crate::both_backends;
use crate::harness::{Db, PASSWORD, cookie};

async fn linking_policy(db: Db) {
    let Some(s) = Setup::new(db, "linking_policy", &[]).await else {
        return;
    };
    s.configure(json!({})).await;
    // Someone registered alice's address first, without proving it.
    s.aegis.register("", "alice@example.com").await;
    let r = s.sign_in(&mut Browser::new(), "?login_hint=alice").await;
    assert_eq!(r.status, 409, "{}", r.text);
    // Even with linking switched on, an unverified local address is not linked: the
    // early registrant must not receive alice's sign-in.
    s.configure(json!({"link_verified_email": true})).await;
    let r = s.sign_in(&mut Browser::new(), "?login_hint=alice").await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(s.oidc_sessions().await, 0);

    // An operator-created account counts as verified: with linking off it conflicts
    // even when the provider is trusted for addresses...
    s.aegis.create_admin("bob@example.com");
    s.configure(json!({"link_verified_email": false, "trust_email": true}))
        .await;
    let r = s.sign_in(&mut Browser::new(), "?login_hint=bob").await;
    assert_eq!(r.status, 409, "linking off: {}", r.text);
    // ...with linking on, bob's address unverified at the provider stops it too...
    s.configure(json!({"link_verified_email": true})).await;
    let r = s.sign_in(&mut Browser::new(), "?login_hint=bob").await;
    assert_eq!(r.status, 409, "unverified at the provider: {}", r.text);
    // ...and with both it is linked: the same user, not a new one.
    s.configure(json!({"link_verified_email": true, "trust_email": true}))
        .await;
    let r = s.sign_in(&mut Browser::new(), "?login_hint=bob").await;
    assert_eq!(r.status, 303, "{}", r.text);
    let me = s.whoami(&session_token(&r).unwrap()).await.json();
    let bobs = s
        .aegis
        .db
        .scalar_i64("SELECT COUNT(*) FROM users WHERE email = 'bob@example.com'")
        .await;
    assert_eq!(bobs, 1, "no second account");
    assert_eq!(me["user"]["email"], "bob@example.com");
    assert!(me["roles"].as_array().unwrap().contains(&json!("admin")));
    let link = s.audit_details("oidc.link").await;
    assert_eq!(link.len(), 1);
    // The linked account still signs in with its password.
    assert_eq!(
        s.aegis.login("", "bob@example.com", PASSWORD).await.status,
        200
    );
    assert_eq!(s.failure_reasons().await, ["email_conflict"; 4]);
}
both_backends!(linking_policy);

async fn provisioning_switch(db: Db) {
    let Some(s) = Setup::new(db, "provisioning_switch", &[]).await else {
        return;
    };
    s.configure(json!({"jit_provisioning": false})).await;
    let r = s.sign_in(&mut Browser::new(), "?login_hint=alice").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.json()["message"].as_str().unwrap().contains("no account"));
    assert_eq!(
        s.aegis
            .db
            .scalar_i64("SELECT COUNT(*) FROM users WHERE email = 'alice@example.com'")
            .await,
        0
    );
    // A provider account without an address cannot become a local user.
    s.configure(json!({"jit_provisioning": true})).await;
    let r = s.sign_in(&mut Browser::new(), "?login_hint=carol").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(s.failure_reasons().await, ["no_account", "email_missing"]);
    // A provisioned user cannot sign in with a password (it has none anyone knows).
    let r = s.sign_in(&mut Browser::new(), "?login_hint=alice").await;
    assert_eq!(r.status, 303, "{}", r.text);
    let r = s.aegis.login("", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status, 401);
    assert_eq!(s.oidc_sessions().await, 1);
}
both_backends!(provisioning_switch);

async fn providers_are_per_tenant(db: Db) {
    let Some(s) = Setup::new(db, "providers_are_per_tenant", &[]).await else {
        return;
    };
    let out = s.aegis.cli(&["tenant", "create", "acme"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.aegis.cli(
        &[
            "user",
            "create",
            "--email",
            "ops@acme.example",
            "--tenant",
            "acme",
            "--role",
            "admin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login = s.aegis.login("/t/acme", "ops@acme.example", PASSWORD).await;
    let (token, csrf) = (
        login.session_cookie().unwrap(),
        login.json()["csrf_token"].as_str().unwrap().to_string(),
    );
    let c = cookie(&token);
    let r = s
        .aegis
        .req(
            "PUT",
            "/t/acme/api/v1/admin/oidc/providers/corp",
            Some(&s.settings()),
            &[("cookie", &c), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The default tenant has no provider `corp`.
    let r = Browser::new().get(&s.start_url("")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let listed = s
        .aegis
        .req("GET", "/t/acme/api/v1/oidc/providers", None, &[])
        .await;
    assert_eq!(
        listed.json()["providers"][0]["display_name"],
        "Corporate SSO"
    );
    assert_eq!(
        s.aegis
            .req("GET", "/api/v1/oidc/providers", None, &[])
            .await
            .json()["providers"],
        json!([])
    );
    // Through the tenant prefix the callback keeps the prefix, and the session is acme's.
    let mut browser = Browser::new();
    let start = format!("{}/t/acme/auth/oidc/corp/start", s.aegis.base);
    let callback = match browser
        .follow(
            &start,
            Some(&format!("{}/t/acme/auth/oidc/corp/callback", s.aegis.base)),
        )
        .await
    {
        Err(c) => c,
        Ok(r) => panic!("{}", r.text),
    };
    let r = browser.get(&callback).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let token = session_token(&r).unwrap();
    let me = s
        .aegis
        .req(
            "GET",
            "/t/acme/api/v1/session",
            None,
            &[("cookie", &cookie(&token))],
        )
        .await;
    assert_eq!(me.json()["tenant"]["slug"], "acme");
    // The session does not open the default tenant.
    assert_eq!(s.whoami(&token).await.status, 401);
}
both_backends!(providers_are_per_tenant);

async fn admin_api(db: Db) {
    let Some(s) = Setup::new(db, "admin_api", &[]).await else {
        return;
    };
    let mut bad = s.settings();
    bad["issuer"] = json!("ftp://idp.example");
    let r = s.put_provider("corp", &bad).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.json()["message"].as_str().unwrap().starts_with("issuer"));
    let mut bad = s.settings();
    bad["algorithms"] = json!(["none"]);
    assert_eq!(s.put_provider("corp", &bad).await.status, 422);
    let mut bad = s.settings();
    bad["surprise"] = json!(1);
    assert_eq!(s.put_provider("corp", &bad).await.status, 422);
    assert_eq!(s.put_provider("Bad Name", &s.settings()).await.status, 422);
    assert_eq!(
        s.aegis
            .db
            .scalar_i64("SELECT COUNT(*) FROM oidc_providers")
            .await,
        0,
        "nothing written by refused input"
    );
    let r = s.put_provider("corp", &s.settings()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(!r.text.contains(super::idp::CLIENT_SECRET), "{}", r.text);
    assert_eq!(r.json()["provider"]["client_secret_set"], true);
    let stored = s
        .aegis
        .db
        .strings("SELECT client_secret_enc FROM oidc_providers")
        .await;
    assert!(!stored[0].contains(super::idp::CLIENT_SECRET));
    // Replacing without the secret keeps the stored one.
    let mut again = s.settings();
    again.as_object_mut().unwrap().remove("client_secret");
    again["display_name"] = json!("Corp");
    let r = s.put_provider("corp", &again).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.sign_in(&mut Browser::new(), "").await.status, 303);
    let audits = s.audit_details("oidc.provider.update").await;
    assert_eq!(audits[0]["before"]["display_name"], "Corporate SSO");
    assert_eq!(audits[0]["after"]["display_name"], "Corp");
    assert_eq!(audits[0]["client_secret_changed"], false);
    // Members may not manage providers.
    let (token, csrf) = s.aegis.signed_in("member@example.com").await;
    let r = s
        .aegis
        .req(
            "PUT",
            "/api/v1/admin/oidc/providers/x",
            Some(&s.settings()),
            &[("cookie", &cookie(&token)), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);
    // Deleting removes the provider and its links; sign-in through it is gone.
    assert_eq!(
        s.admin("DELETE", "/api/v1/admin/oidc/providers/corp", None)
            .await
            .status,
        204
    );
    assert_eq!(
        s.admin("DELETE", "/api/v1/admin/oidc/providers/corp", None)
            .await
            .status,
        404
    );
    assert_eq!(
        s.aegis
            .db
            .scalar_i64("SELECT COUNT(*) FROM oidc_identities")
            .await,
        0
    );
    assert_eq!(Browser::new().get(&s.start_url("")).await.status, 404);
    assert_eq!(s.audit_details("oidc.provider.delete").await.len(), 1);
}
both_backends!(admin_api);

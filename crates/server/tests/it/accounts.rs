//! Registration, login, logout, lockout, bcrypt upgrade, password change.

use serde_json::json;

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Server, cookie};

async fn round_trip(db: Db) {
    let s = Server::start(db, &[]).await;
    let r = s.register("", "  Alice@Example.COM ").await;
    assert_eq!(r.json()["user"]["email"], "alice@example.com");
    assert_eq!(r.json()["user"]["roles"], json!(["member"]));

    let r = s.login("", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let set_cookie = r.header("set-cookie").expect("set-cookie");
    let token = r.session_cookie().expect("token");
    assert_eq!(token.len(), 43);
    assert_eq!(
        set_cookie,
        format!(
            "__Host-aegis_session={token}; Path=/; Max-Age=28800; HttpOnly; Secure; SameSite=Lax"
        )
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));

    // Only the SHA-256 of the token is stored.
    let hashes = s.db.blobs("SELECT token_hash FROM sessions").await;
    assert_eq!(
        hashes,
        vec![aegis_core::crypto::sha256(token.as_bytes()).to_vec()]
    );
    let as_text =
        s.db.scalar_i64(&format!(
            "SELECT COUNT(*) FROM sessions WHERE ip = '{token}' OR user_agent = '{token}'"
        ))
        .await;
    assert_eq!(as_text, 0);

    let me = s
        .req(
            "GET",
            "/api/v1/session",
            None,
            &[("cookie", &cookie(&token))],
        )
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"]["email"], "alice@example.com");
    assert_eq!(me.json()["tenant"]["slug"], "default");
    assert_eq!(me.json()["roles"], json!(["member"]));

    let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    let out = s
        .req(
            "POST",
            "/api/v1/logout",
            None,
            &[("cookie", &cookie(&token)), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    assert_eq!(
        out.header("set-cookie").as_deref(),
        Some("__Host-aegis_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
    );
    assert_eq!(s.db.scalar_i64("SELECT COUNT(*) FROM sessions").await, 0);
    let me = s
        .req(
            "GET",
            "/api/v1/session",
            None,
            &[("cookie", &cookie(&token))],
        )
        .await;
    assert_eq!(me.status, 401);
    assert!(me.header("www-authenticate").is_some());
}
both_backends!(round_trip);

async fn unknown_user_and_wrong_password_look_the_same(db: Db) {
    let s = Server::start(db, &[]).await;
    s.register("", "bob@example.com").await;
    let body_wrong = json!({"email": "bob@example.com", "password": "wrong password here 123"});
    let body_unknown =
        json!({"email": "nobody@example.com", "password": "wrong password here 123"});
    let fixed = [("x-request-id", "fixed-id-for-comparison")];
    let a = s
        .req("POST", "/api/v1/login", Some(&body_wrong), &fixed)
        .await;
    let b = s
        .req("POST", "/api/v1/login", Some(&body_unknown), &fixed)
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.status, b.status);
    assert_eq!(a.text, b.text, "bodies must be byte-identical");
    assert_eq!(a.json()["message"], "invalid email or password");
    assert!(!a.text.contains("bob"));
}
both_backends!(unknown_user_and_wrong_password_look_the_same);

async fn lockout_and_unlock(db: Db) {
    let s = Server::start(
        db,
        &[
            ("AEGIS_LOCKOUT_THRESHOLD", "3"),
            ("AEGIS_LOCKOUT_BASE_SECS", "2"),
            // Every request comes from 127.0.0.1, which carol's first login makes known;
            // the known-IP bypass has its own test (ratelimit.rs).
            ("AEGIS_LOCKOUT_KNOWN_IP_BYPASS", "false"),
        ],
    )
    .await;
    s.register("", "carol@example.com").await;
    // Two failures then a success: the counter resets, no lock.
    for _ in 0..2 {
        assert_eq!(
            s.login("", "carol@example.com", "bad password one 99")
                .await
                .status,
            401
        );
    }
    assert_eq!(s.login("", "carol@example.com", PASSWORD).await.status, 200);
    assert_eq!(
        s.db.scalar_i64("SELECT CAST(MAX(failed_attempts) AS BIGINT) FROM users")
            .await,
        0
    );
    // Three failures lock the account: even the right password is refused.
    for _ in 0..3 {
        assert_eq!(
            s.login("", "carol@example.com", "bad password one 99")
                .await
                .status,
            401
        );
    }
    let locked = s.login("", "carol@example.com", PASSWORD).await;
    assert_eq!(locked.status, 401);
    assert_eq!(locked.json()["message"], "invalid email or password");
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'user.locked'")
            .await,
        1
    );
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    assert_eq!(s.login("", "carol@example.com", PASSWORD).await.status, 200);
    assert_eq!(
        s.db.scalar_i64("SELECT CAST(MAX(failed_attempts) AS BIGINT) FROM users")
            .await,
        0
    );
}
both_backends!(lockout_and_unlock);

async fn bcrypt_import_is_upgraded_at_login(db: Db) {
    let s = Server::start(db, &[]).await;
    let legacy = bcrypt::hash("legacy password from old system", 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.jsonl");
    std::fs::write(
        &file,
        format!(
            "{}\n",
            json!({"email": "Dave@Example.com", "password_hash": legacy})
        ),
    )
    .unwrap();
    let out = s.cli(
        &[
            "user",
            "import",
            "--tenant",
            "default",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.db.strings("SELECT password_algorithm FROM users").await,
        vec!["bcrypt".to_string()]
    );
    let r = s
        .login("", "dave@example.com", "legacy password from old system")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hashes = s.db.strings("SELECT password_hash FROM users").await;
    assert!(
        hashes[0].starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        hashes[0]
    );
    assert_eq!(
        s.db.strings("SELECT password_algorithm FROM users").await,
        vec!["argon2id".to_string()]
    );
    assert_eq!(
        s.login("", "dave@example.com", "legacy password from old system")
            .await
            .status,
        200
    );
    assert_eq!(s.login("", "dave@example.com", "wrong").await.status, 401);
}
both_backends!(bcrypt_import_is_upgraded_at_login);

async fn password_change_revokes_sessions(db: Db) {
    let s = Server::start(db, &[]).await;
    let (token, csrf) = s.signed_in("erin@example.com").await;
    let other = s
        .login("", "erin@example.com", PASSWORD)
        .await
        .session_cookie()
        .unwrap();
    let new_password = "a brand new passphrase 2026!";
    let bad = s
        .req(
            "POST",
            "/api/v1/password",
            Some(&json!({"current_password": "not it at all 77", "new_password": new_password})),
            &[("cookie", &cookie(&token)), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(bad.status, 403, "{}", bad.text);
    let weak = s
        .req(
            "POST",
            "/api/v1/password",
            Some(&json!({"current_password": PASSWORD, "new_password": "password"})),
            &[("cookie", &cookie(&token)), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(weak.status, 422, "{}", weak.text);
    let r = s
        .req(
            "POST",
            "/api/v1/password",
            Some(&json!({"current_password": PASSWORD, "new_password": new_password})),
            &[("cookie", &cookie(&token)), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh = r.session_cookie().expect("new session cookie");
    assert_ne!(fresh, token);
    for old in [&token, &other] {
        let me = s
            .req("GET", "/api/v1/session", None, &[("cookie", &cookie(old))])
            .await;
        assert_eq!(me.status, 401);
    }
    let me = s
        .req(
            "GET",
            "/api/v1/session",
            None,
            &[("cookie", &cookie(&fresh))],
        )
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(s.login("", "erin@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        s.login("", "erin@example.com", new_password).await.status,
        200
    );
}
both_backends!(password_change_revokes_sessions);

async fn weak_and_duplicate_registration(db: Db) {
    let s = Server::start(db, &[]).await;
    let weak = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "f@example.com", "password": "password1"})),
            &[],
        )
        .await;
    assert_eq!(weak.status, 422);
    assert!(
        weak.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("password:")
    );
    let short = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "f@example.com", "password": "Xy1!"})),
            &[],
        )
        .await;
    assert_eq!(short.status, 422);
    let bad_email = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "nope", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(bad_email.status, 422);
    assert!(
        bad_email.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("email:")
    );
    s.register("", "f@example.com").await;
    let dup = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "F@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(s.db.scalar_i64("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'user.register'")
            .await,
        1
    );
}
both_backends!(weak_and_duplicate_registration);

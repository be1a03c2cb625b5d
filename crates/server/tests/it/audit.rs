//! The audit log: one entry per action, written with the action, append-only, queryable.

use serde_json::json;
use sqlx::AssertSqlSafe;

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Server, cookie};

async fn count(s: &Server, action: &str) -> i64 {
    s.db.scalar_i64(&format!(
        "SELECT COUNT(*) FROM audit_events WHERE action = '{action}'"
    ))
    .await
}

async fn each_action_is_audited_once(db: Db) {
    let s = Server::start(db, &[("AEGIS_LOCKOUT_THRESHOLD", "2")]).await;
    s.register("", "a@example.com").await;
    assert_eq!(count(&s, "user.register").await, 1);

    let r = s.login("", "a@example.com", PASSWORD).await;
    let token = r.session_cookie().unwrap();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(count(&s, "login.success").await, 1);

    let second = s
        .login("", "a@example.com", PASSWORD)
        .await
        .session_cookie()
        .unwrap();
    assert_eq!(count(&s, "login.success").await, 2);
    let c = cookie(&token);
    let h = [("cookie", c.as_str()), ("x-csrf-token", csrf.as_str())];
    let list = s.req("GET", "/api/v1/sessions", None, &h).await.json();
    let other_id = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.req("DELETE", &format!("/api/v1/sessions/{other_id}"), None, &h)
            .await
            .status,
        204
    );
    assert_eq!(count(&s, "session.revoke").await, 1);
    let _ = second;

    let r = s
        .req(
            "POST",
            "/api/v1/password",
            Some(&json!({"current_password": PASSWORD, "new_password": "another strong passphrase 77"})),
            &h,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(count(&s, "password.change").await, 1);
    let token = r.session_cookie().unwrap();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    let c = cookie(&token);
    let h = [("cookie", c.as_str()), ("x-csrf-token", csrf.as_str())];
    assert_eq!(s.req("POST", "/api/v1/logout", None, &h).await.status, 204);
    assert_eq!(count(&s, "session.logout").await, 1);

    // Unknown user: one failure entry, no personal data about the address.
    assert_eq!(
        s.login("", "ghost@example.com", "whatever pass 1")
            .await
            .status,
        401
    );
    assert_eq!(count(&s, "login.failure").await, 1);
    let details =
        s.db.strings("SELECT resource FROM audit_events WHERE action = 'login.failure'")
            .await;
    assert!(!details[0].contains("ghost"));
    // Two bad passwords: two failures and one lockout.
    for _ in 0..2 {
        s.login("", "a@example.com", "wrong wrong wrong 1").await;
    }
    assert_eq!(count(&s, "login.failure").await, 3);
    assert_eq!(count(&s, "user.locked").await, 1);

    let out = s.cli(&["tenant", "create", "gamma"], None);
    assert!(out.status.success());
    assert_eq!(count(&s, "tenant.create").await, 1);
    let out = s.cli(&["tenant", "disable", "gamma"], None);
    assert!(out.status.success());
    assert_eq!(count(&s, "tenant.disable").await, 1);

    // Entries carry request facts.
    let ips =
        s.db.strings("SELECT ip FROM audit_events WHERE action = 'login.success'")
            .await;
    assert!(ips.iter().all(|ip| ip == "127.0.0.1"));
    let ids = s
        .db
        .scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'login.success' AND request_id IS NOT NULL")
        .await;
    assert_eq!(ids, 2);
}
both_backends!(each_action_is_audited_once);

async fn failed_actions_leave_no_entry(db: Db) {
    let s = Server::start(db, &[]).await;
    // Invalid input, weak password, logout without a session: nothing happened.
    let r = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "x@example.com", "password": "weak"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(s.req("POST", "/api/v1/logout", None, &[]).await.status, 401);
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events").await,
        0
    );
    assert_eq!(s.db.scalar_i64("SELECT COUNT(*) FROM users").await, 0);
}
both_backends!(failed_actions_leave_no_entry);

async fn audit_log_is_append_only(db: Db) {
    let s = Server::start(db, &[]).await;
    s.register("", "a@example.com").await;
    let err = match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&s.db.app_url).await.unwrap();
            let upd = sqlx::query("UPDATE audit_events SET action = 'forged'")
                .execute(&pool)
                .await;
            let del = sqlx::query("DELETE FROM audit_events").execute(&pool).await;
            assert!(del.is_err());
            upd.err()
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&s.db.app_url).await.unwrap();
            let tenant =
                s.db.strings("SELECT id::text FROM tenants WHERE slug = 'default'")
                    .await;
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(AssertSqlSafe(format!(
                "SELECT set_config('app.current_tenant_id', '{}', true)",
                tenant[0]
            )))
            .execute(&mut *tx)
            .await
            .unwrap();
            let upd = sqlx::query("UPDATE audit_events SET action = 'forged'")
                .execute(&mut *tx)
                .await;
            upd.err()
        }
    };
    let err = err.expect("UPDATE on audit_events must fail");
    let text = err.to_string();
    assert!(
        text.contains("append-only") || text.contains("permission denied"),
        "{text}"
    );
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'forged'")
            .await,
        0
    );
}
both_backends!(audit_log_is_append_only);

async fn audit_query_api(db: Db) {
    let s = Server::start(db, &[]).await;
    s.create_admin("admin@example.com");
    s.register("", "m@example.com").await;
    for _ in 0..3 {
        assert_eq!(s.login("", "m@example.com", PASSWORD).await.status, 200);
    }
    let r = s.login("", "admin@example.com", PASSWORD).await;
    let c = cookie(&r.session_cookie().unwrap());
    let admin_id = r.json()["user"]["id"].as_str().unwrap().to_string();
    let page = s
        .req(
            "GET",
            "/api/v1/audit?action=login.success&limit=2",
            None,
            &[("cookie", &c)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let events = page.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["action"] == "login.success"));
    let next = page.json()["next_before"].as_str().unwrap().to_string();
    let rest = s
        .req(
            "GET",
            &format!("/api/v1/audit?action=login.success&limit=2&before={next}"),
            None,
            &[("cookie", &c)],
        )
        .await;
    assert_eq!(rest.json()["events"].as_array().unwrap().len(), 2);
    let mine = s
        .req(
            "GET",
            &format!("/api/v1/audit?actor={admin_id}"),
            None,
            &[("cookie", &c)],
        )
        .await;
    let mine = mine.json()["events"].as_array().unwrap().clone();
    assert_eq!(mine.len(), 2, "admin created + admin logged in");
    let future = s
        .req(
            "GET",
            "/api/v1/audit?since=99999999999999",
            None,
            &[("cookie", &c)],
        )
        .await;
    assert_eq!(future.json()["events"].as_array().unwrap().len(), 0);
    let bad = s
        .req("GET", "/api/v1/audit?limit=abc", None, &[("cookie", &c)])
        .await;
    assert_eq!(bad.status, 400);
    let member = s
        .login("", "m@example.com", PASSWORD)
        .await
        .session_cookie()
        .unwrap();
    let r = s
        .req(
            "GET",
            "/api/v1/audit",
            None,
            &[("cookie", &cookie(&member))],
        )
        .await;
    assert_eq!(r.status, 403);
}
both_backends!(audit_query_api);

//! Tenant isolation through the API and, on PostgreSQL, through row-level security.

use serde_json::json;
use sqlx::AssertSqlSafe;

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Server, cookie};

async fn tenants_are_isolated(db: Db) {
    let s = Server::start(db, &[]).await;
    let out = s.cli(&["tenant", "create", "acme", "--name", "Acme Corp"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Alice exists in the default tenant only.
    let (token, _) = s.signed_in("alice@example.com").await;
    let r = s.login("/t/acme", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status, 401);
    let r = s
        .req(
            "GET",
            "/t/acme/api/v1/session",
            None,
            &[("cookie", &cookie(&token))],
        )
        .await;
    assert_eq!(
        r.status, 401,
        "a default-tenant session must not work in acme"
    );
    // The same address can register separately in acme, and that account is acme's.
    s.register("/t/acme", "alice@example.com").await;
    let r = s.login("/t/acme", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status, 200);
    let acme_token = r.session_cookie().unwrap();
    let me = s
        .req(
            "GET",
            "/t/acme/api/v1/session",
            None,
            &[("cookie", &cookie(&acme_token))],
        )
        .await;
    assert_eq!(me.json()["tenant"]["slug"], "acme");
    let me = s
        .req(
            "GET",
            "/api/v1/session",
            None,
            &[("cookie", &cookie(&acme_token))],
        )
        .await;
    assert_eq!(me.status, 401);
    assert_eq!(
        s.req("GET", "/t/nope/api/v1/session", None, &[])
            .await
            .status,
        404
    );

    // Disabling the tenant shuts it off.
    let out = s.cli(&["tenant", "disable", "acme"], None);
    assert!(out.status.success());
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await; // tenant cache TTL
    let r = s.login("/t/acme", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "tenant is disabled");

    if db == Db::Postgres {
        row_level_security_hides_other_tenants(&s).await;
    }
}
both_backends!(tenants_are_isolated);

/// As the application role: tenant B's context sees none of tenant A's rows, and no
/// tenant context sees no rows at all.
async fn row_level_security_hides_other_tenants(s: &Server) {
    let ids = s
        .db
        .strings("SELECT id::text FROM tenants WHERE slug IN ('default', 'acme') ORDER BY slug")
        .await;
    let (acme, default) = (&ids[0], &ids[1]);
    let app = sqlx::PgPool::connect(&s.db.app_url).await.unwrap();
    let count_in = |tenant: Option<String>| {
        let app = app.clone();
        async move {
            let mut tx = app.begin().await.unwrap();
            if let Some(t) = tenant {
                sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
                    .bind(t)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            let mut counts = Vec::new();
            for table in ["users", "sessions", "audit_events"] {
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table} WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'default')"
                )))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                counts.push(n);
            }
            let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            (counts, all)
        }
    };
    let (own, _) = count_in(Some(default.clone())).await;
    assert!(
        own.iter().all(|n| *n > 0),
        "sanity: the default tenant sees its rows: {own:?}"
    );
    let (other, acme_users) = count_in(Some(acme.clone())).await;
    assert_eq!(
        other,
        vec![0, 0, 0],
        "acme's context must see none of default's rows"
    );
    assert_eq!(acme_users, 1);
    let (none, all) = count_in(None).await;
    assert_eq!(none, vec![0, 0, 0]);
    assert_eq!(all, 0, "no tenant set: no rows");
    // Inserting a row for another tenant is refused by the policy's WITH CHECK.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
        .bind(acme.clone())
        .execute(&mut *tx)
        .await
        .unwrap();
    let forged = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO users (tenant_id, id, email, password_hash, password_algorithm, role, created_at, updated_at)
         VALUES ('{default}', gen_random_uuid(), 'x@example.com', 'h', 'argon2id', 'member', 0, 0)"
    )))
    .execute(&mut *tx)
    .await;
    assert!(forged.is_err(), "cross-tenant insert must fail");
    // The aborted transaction holds a connection; `close` waits for every one.
    tx.rollback().await.unwrap();
    app.close().await;
}

async fn admin_api_manages_tenants(db: Db) {
    let s = Server::start(db, &[]).await;
    s.create_admin("root@example.com");
    let r = s.login("", "root@example.com", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.session_cookie().unwrap();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    let c = cookie(&token);
    let h = [("cookie", c.as_str()), ("x-csrf-token", csrf.as_str())];
    let created = s
        .req(
            "POST",
            "/api/v1/admin/tenants",
            Some(&json!({"slug": "beta", "name": "Beta"})),
            &h,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let dup = s
        .req(
            "POST",
            "/api/v1/admin/tenants",
            Some(&json!({"slug": "beta", "name": "Beta"})),
            &h,
        )
        .await;
    assert_eq!(dup.status, 409);
    let bad = s
        .req(
            "POST",
            "/api/v1/admin/tenants",
            Some(&json!({"slug": "Bad Slug!", "name": "x"})),
            &h,
        )
        .await;
    assert_eq!(bad.status, 422);
    let list = s.req("GET", "/api/v1/admin/tenants", None, &h).await;
    let slugs: Vec<String> = list.json()["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(slugs, vec!["default", "beta"]);
    let r = s
        .req("POST", "/api/v1/admin/tenants/beta/disable", None, &h)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.register_status("/t/beta", "z@example.com").await, 403);
    let r = s
        .req("POST", "/api/v1/admin/tenants/beta/enable", None, &h)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.register_status("/t/beta", "z@example.com").await, 201);

    // A member is refused; an admin of another tenant is not a platform admin.
    let (member, member_csrf) = s.signed_in("member@example.com").await;
    let mc = cookie(&member);
    let r = s
        .req(
            "GET",
            "/api/v1/admin/tenants",
            None,
            &[("cookie", &mc), ("x-csrf-token", &member_csrf)],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "requires the admin role");
}
both_backends!(admin_api_manages_tenants);

impl Server {
    pub async fn register_status(&self, prefix: &str, email: &str) -> u16 {
        self.req(
            "POST",
            &format!("{prefix}/api/v1/register"),
            Some(&json!({"email": email, "password": PASSWORD})),
            &[],
        )
        .await
        .status
    }
}

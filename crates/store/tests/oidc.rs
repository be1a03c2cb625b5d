//! OIDC storage and the session columns added with it, on a fresh database of each
//! backend: round trips, single-use sign-in states, purge, links, cascades, conflicts,
//! tenant filtering, and (PostgreSQL) row-level security for a non-owner role.

use std::sync::Arc;

use aegis_core::CoreError;
use aegis_core::clock::Millis;
use aegis_core::ids::{SessionId, TenantId, UserId};
use aegis_core::model::{AuthMethod, HashAlgorithm, MfaPolicy, Role, Session, Tenant, User};
use aegis_core::oidc::{OidcLink, OidcLoginState, OidcProvider, ProviderSettings};
use aegis_core::store::{Store, TenantTx};
use aegis_store::ConnectOptions;
use sqlx::AssertSqlSafe;

const NOW: Millis = 1_700_000_000_000;

/// Where the test runs: the URLs it opens, and how to reach the database as its owner.
struct TestDb {
    app_url: String,
    owner_url: String,
    postgres: bool,
    _dir: tempfile::TempDir,
    _drop: Option<DropDatabase>,
}

impl TestDb {
    /// Runs a statement as the owner, bypassing the store (to corrupt a row on purpose).
    async fn owner_exec(&self, sql: &str) {
        let sql = AssertSqlSafe(sql.to_string());
        if self.postgres {
            let pool = sqlx::PgPool::connect(&self.owner_url).await.expect("owner");
            sqlx::raw_sql(sql).execute(&pool).await.expect("owner exec");
            pool.close().await;
        } else {
            let pool = sqlx::SqlitePool::connect(&self.owner_url)
                .await
                .expect("owner");
            sqlx::raw_sql(sql).execute(&pool).await.expect("owner exec");
            pool.close().await;
        }
    }
}

/// Drops the test's PostgreSQL database when the test ends, passed or not.
struct DropDatabase {
    admin_url: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // A fresh runtime on its own thread: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

fn with_db(url: &str, db: &str, user: Option<&str>) -> String {
    let mut u = url::Url::parse(url).expect("postgres url");
    u.set_path(&format!("/{db}"));
    if let Some(user) = user {
        u.set_username(user).expect("username");
        u.set_password(None).expect("password");
    }
    u.to_string()
}

async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("aegis.db").display());
    TestDb {
        app_url: url.clone(),
        owner_url: url,
        postgres: false,
        _dir: dir,
        _drop: None,
    }
}

/// A fresh database, and the application role `aegis_app` (LOGIN, not superuser, no
/// BYPASSRLS) that the store connects as, so every query runs under row-level security.
async fn postgres_db(admin: &str) -> TestDb {
    let name = format!("aegis_st_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(admin).await.expect("connect admin");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create database");
    let drop = DropDatabase {
        admin_url: admin.to_string(),
        name: name.clone(),
    };
    // Cluster-wide, so concurrent test binaries may race to create it.
    let _ = sqlx::raw_sql(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aegis_app') THEN
             CREATE ROLE aegis_app LOGIN NOSUPERUSER NOBYPASSRLS;
           END IF;
         END $$;",
    )
    .execute(&pool)
    .await;
    pool.close().await;
    TestDb {
        app_url: with_db(admin, &name, Some("aegis_app")),
        owner_url: with_db(admin, &name, None),
        postgres: true,
        _dir: tempfile::tempdir().expect("tempdir"),
        _drop: Some(drop),
    }
}

async fn open(db: &TestDb) -> Arc<dyn Store> {
    let applied = aegis_store::migrate(&db.owner_url, &db.app_url)
        .await
        .expect("migrate");
    assert!(applied.iter().any(|m| m == "0006_oidc"), "{applied:?}");
    let opts = ConnectOptions {
        max_connections: 4,
        acquire_timeout_secs: 10,
    };
    aegis_store::open(&db.app_url, &opts).await.expect("open")
}

fn tenant(slug: &str) -> Tenant {
    Tenant {
        id: TenantId::new(),
        slug: slug.into(),
        name: slug.into(),
        host: None,
        disabled: false,
        created_at: NOW,
        mfa_policy: MfaPolicy::Optional,
        require_verified_email: false,
    }
}

fn user(tenant: TenantId) -> User {
    User {
        id: UserId::new(),
        tenant_id: tenant,
        email: "ada@example.com".into(),
        password_hash: "$argon2id$unused".into(),
        password_algorithm: HashAlgorithm::Argon2id,
        role: Role::Member,
        failed_attempts: 0,
        locked_until: None,
        last_login_at: None,
        last_login_ip: None,
        created_at: NOW,
        updated_at: NOW,
        email_verified_at: None,
    }
}

fn provider(tenant: TenantId, name: &str) -> OidcProvider {
    // The input carries a secret, as the admin API's would; it must not be stored.
    let settings: ProviderSettings = serde_json::from_value(serde_json::json!({
        "issuer": "https://idp.example.com",
        "client_id": format!("aegis-{name}"),
        "client_secret": "plain-secret-never-stored",
        "scopes": ["openid", "email"],
        "role_rules": [{"claim": "groups", "value": "staff", "role": "advisor"}],
    }))
    .expect("settings");
    OidcProvider {
        id: uuid::Uuid::now_v7(),
        tenant_id: tenant,
        name: name.into(),
        settings,
        client_secret_enc: Some(format!("enc:secret:{name}")),
        private_key_enc: None,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn state(provider_id: uuid::Uuid, tag: u8, expires_at: Millis) -> OidcLoginState {
    OidcLoginState {
        id: uuid::Uuid::now_v7(),
        provider_id,
        state_hash: vec![tag; 32],
        binding_hash: vec![tag ^ 0xff; 32],
        nonce_hash: vec![tag.wrapping_add(1); 32],
        verifier_enc: format!("enc:verifier:{tag}"),
        redirect_uri: "https://aegis.example.com/auth/oidc/corp/callback".into(),
        return_to: "/account".into(),
        created_at: NOW,
        expires_at,
    }
}

fn link(user: UserId, provider_id: uuid::Uuid, subject: &str, created_at: Millis) -> OidcLink {
    OidcLink {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        provider_id,
        subject: subject.into(),
        refresh_token_enc: None,
        created_at,
        last_login_at: None,
    }
}

fn session(user: UserId, tenant: TenantId, tag: u8, method: AuthMethod, roles: &[&str]) -> Session {
    Session {
        id: SessionId::new(),
        tenant_id: tenant,
        user_id: user,
        token_hash: vec![tag; 32],
        created_at: NOW + i64::from(tag),
        expires_at: NOW + 3_600_000,
        last_seen_at: NOW,
        ip: Some("192.0.2.1".into()),
        user_agent: Some("test".into()),
        auth_method: method,
        extra_roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

async fn write(store: &dyn Store, t: TenantId) -> Box<dyn TenantTx> {
    store.write(t).await.expect("begin")
}

fn assert_state_eq(got: &OidcLoginState, want: &OidcLoginState) {
    assert_eq!(got.id, want.id);
    assert_eq!(got.provider_id, want.provider_id);
    assert_eq!(got.state_hash, want.state_hash);
    assert_eq!(got.binding_hash, want.binding_hash);
    assert_eq!(got.nonce_hash, want.nonce_hash);
    assert_eq!(got.verifier_enc, want.verifier_enc);
    assert_eq!(got.redirect_uri, want.redirect_uri);
    assert_eq!(got.return_to, want.return_to);
    assert_eq!(got.created_at, want.created_at);
    assert_eq!(got.expires_at, want.expires_at);
}

fn assert_link_eq(got: &OidcLink, want: &OidcLink) {
    assert_eq!(got.id, want.id);
    assert_eq!(got.user_id, want.user_id);
    assert_eq!(got.provider_id, want.provider_id);
    assert_eq!(got.subject, want.subject);
    assert_eq!(got.refresh_token_enc, want.refresh_token_enc);
    assert_eq!(got.created_at, want.created_at);
    assert_eq!(got.last_login_at, want.last_login_at);
}

/// The two tenants the body leaves behind: `a` holds a provider, a pending sign-in and
/// a link; `b` holds nothing.
struct Tenants {
    a: TenantId,
    b: TenantId,
}

async fn providers(store: &dyn Store, db: &TestDb, a: TenantId, b: TenantId) {
    let corp = provider(a, "corp");
    let mut tx = write(store, a).await;
    tx.oidc_provider_insert(&corp).await.expect("insert corp");
    tx.oidc_provider_insert(&provider(a, "acme"))
        .await
        .expect("insert acme");
    tx.commit().await.expect("commit");

    let mut tx = store.read(a).await.expect("read");
    let got = tx
        .oidc_provider_by_name("corp")
        .await
        .expect("by name")
        .expect("corp exists");
    assert_eq!((got.id, got.tenant_id), (corp.id, a));
    assert_eq!(got.name, "corp");
    assert_eq!(got.settings.client_id, "aegis-corp");
    assert_eq!(got.settings.scopes, ["openid", "email"]);
    assert_eq!(got.settings.role_rules, corp.settings.role_rules);
    assert!(
        got.settings.client_secret.is_none(),
        "secret kept out of JSON"
    );
    assert_eq!(got.client_secret_enc.as_deref(), Some("enc:secret:corp"));
    assert_eq!(got.private_key_enc, None);
    assert_eq!((got.created_at, got.updated_at), (NOW, NOW));
    let names: Vec<String> = tx
        .oidc_provider_list()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["acme", "corp"]);
    assert!(tx.oidc_provider_by_name("nope").await.expect("q").is_none());
    drop(tx);

    // A name is unique per tenant; a failed insert may poison the transaction, so it
    // gets its own.
    let mut tx = write(store, a).await;
    match tx.oidc_provider_insert(&provider(a, "corp")).await {
        Err(CoreError::Conflict(m)) => {
            assert_eq!(m, "name: a provider with this name already exists")
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    drop(tx);
    // ... but another tenant may use the same name.
    let mut tx = write(store, b).await;
    assert!(tx.oidc_provider_by_name("corp").await.expect("q").is_none());
    assert!(tx.oidc_provider_list().await.expect("list").is_empty());
    assert!(!tx.oidc_provider_delete("corp").await.expect("delete"));
    tx.oidc_provider_insert(&provider(b, "corp"))
        .await
        .expect("same name, other tenant");
    assert!(tx.oidc_provider_delete("corp").await.expect("delete"));
    tx.commit().await.expect("commit");

    let mut changed = corp.clone();
    changed.settings.display_name = Some("Corporate SSO".into());
    changed.client_secret_enc = None;
    changed.private_key_enc = Some("enc:key".into());
    changed.updated_at = NOW + 5;
    let mut tx = write(store, a).await;
    assert!(tx.oidc_provider_update(&changed).await.expect("update"));
    assert!(
        !tx.oidc_provider_update(&provider(a, "ghost"))
            .await
            .expect("update unknown")
    );
    tx.commit().await.expect("commit");
    let mut tx = write(store, b).await;
    assert!(
        !tx.oidc_provider_update(&changed).await.expect("update"),
        "another tenant's provider is out of reach"
    );
    drop(tx);
    let mut tx = store.read(a).await.expect("read");
    let got = tx
        .oidc_provider_by_name("corp")
        .await
        .expect("q")
        .expect("corp");
    assert_eq!(got.settings.display_name.as_deref(), Some("Corporate SSO"));
    assert_eq!(got.client_secret_enc, None);
    assert_eq!(got.private_key_enc.as_deref(), Some("enc:key"));
    assert_eq!((got.created_at, got.updated_at), (NOW, NOW + 5));
    drop(tx);

    // A row whose settings no longer parse is a storage error, not a default.
    let mut tx = write(store, a).await;
    tx.oidc_provider_insert(&provider(a, "broken"))
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    db.owner_exec("UPDATE oidc_providers SET settings = '{\"issuer\": 42' WHERE name = 'broken'")
        .await;
    let mut tx = write(store, a).await;
    for result in [
        tx.oidc_provider_by_name("broken").await.map(|_| ()),
        tx.oidc_provider_list().await.map(|_| ()),
    ] {
        assert!(matches!(result, Err(CoreError::Storage(_))), "{result:?}");
    }
    assert!(tx.oidc_provider_delete("broken").await.expect("delete"));
    tx.commit().await.expect("commit");
}

async fn states_and_links(store: &dyn Store, a: TenantId, b: TenantId, user: UserId) {
    let mut tx = store.read(a).await.expect("read");
    let corp = tx
        .oidc_provider_by_name("corp")
        .await
        .expect("q")
        .expect("corp");
    let acme = tx
        .oidc_provider_by_name("acme")
        .await
        .expect("q")
        .expect("acme");
    drop(tx);

    let live = state(corp.id, 1, NOW + 600_000);
    let expired = state(corp.id, 2, NOW - 1);
    let at_now = state(corp.id, 3, NOW);
    let kept = state(corp.id, 4, NOW + 600_000);
    let on_acme = state(acme.id, 5, NOW + 600_000);
    let mut tx = write(store, a).await;
    for s in [&live, &expired, &at_now, &kept, &on_acme] {
        tx.oidc_state_insert(s).await.expect("state insert");
    }
    tx.commit().await.expect("commit");

    // Another tenant neither finds nor consumes it.
    let mut tx = write(store, b).await;
    assert!(
        tx.oidc_state_take(&live.state_hash)
            .await
            .expect("take")
            .is_none()
    );
    assert_eq!(
        tx.oidc_state_purge(NOW + 10_000_000).await.expect("purge"),
        0
    );
    tx.commit().await.expect("commit");

    let mut tx = write(store, a).await;
    let got = tx
        .oidc_state_take(&live.state_hash)
        .await
        .expect("take")
        .expect("first take finds it");
    assert_state_eq(&got, &live);
    assert!(
        tx.oidc_state_take(&live.state_hash)
            .await
            .expect("take")
            .is_none(),
        "single use"
    );
    let got = tx
        .oidc_state_take(&expired.state_hash)
        .await
        .expect("take")
        .expect("expired states are returned; the caller reports the expiry");
    assert_state_eq(&got, &expired);
    tx.commit().await.expect("commit");

    let mut tx = write(store, a).await;
    assert_eq!(
        tx.oidc_state_purge(NOW).await.expect("purge"),
        1,
        "only the state expiring at `now` is due"
    );
    assert!(
        tx.oidc_state_take(&at_now.state_hash)
            .await
            .expect("take")
            .is_none()
    );
    assert!(
        tx.oidc_state_take(&kept.state_hash)
            .await
            .expect("take")
            .is_some()
    );
    tx.oidc_state_insert(&state(corp.id, 6, NOW + 600_000))
        .await
        .expect("state kept for the isolation check");
    tx.commit().await.expect("commit");

    let l1 = link(user, corp.id, "sub-1", NOW);
    let mut l2 = link(user, acme.id, "sub-1", NOW + 1);
    l2.refresh_token_enc = Some("rt-0".into());
    l2.last_login_at = Some(NOW + 1);
    let mut tx = write(store, a).await;
    tx.oidc_link_insert(&l1).await.expect("link corp");
    tx.oidc_link_insert(&l2)
        .await
        .expect("the same subject at another provider is another account");
    tx.commit().await.expect("commit");

    let mut tx = write(store, a).await;
    match tx
        .oidc_link_insert(&link(user, corp.id, "sub-1", NOW))
        .await
    {
        Err(CoreError::Conflict(m)) => assert_eq!(m, "identity already linked"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    drop(tx);

    let mut tx = write(store, a).await;
    let got = tx
        .oidc_link_by_subject(corp.id, "sub-1")
        .await
        .expect("q")
        .expect("linked");
    assert_link_eq(&got, &l1);
    assert!(
        tx.oidc_link_by_subject(corp.id, "sub-2")
            .await
            .expect("q")
            .is_none()
    );
    let got = tx
        .oidc_link_by_subject(acme.id, "sub-1")
        .await
        .expect("q")
        .expect("linked");
    assert_link_eq(&got, &l2);

    tx.oidc_link_login(l1.id, NOW + 10, None)
        .await
        .expect("login");
    tx.oidc_link_login(l2.id, NOW + 11, None)
        .await
        .expect("login");
    let got = tx
        .oidc_link_by_subject(acme.id, "sub-1")
        .await
        .expect("q")
        .expect("l2");
    assert_eq!(
        got.refresh_token_enc.as_deref(),
        Some("rt-0"),
        "None keeps it"
    );
    assert_eq!(got.last_login_at, Some(NOW + 11));
    tx.oidc_link_login(l2.id, NOW + 12, Some("rt-1"))
        .await
        .expect("login");
    let got = tx
        .oidc_link_by_subject(acme.id, "sub-1")
        .await
        .expect("q")
        .expect("l2");
    assert_eq!(
        got.refresh_token_enc.as_deref(),
        Some("rt-1"),
        "Some replaces it"
    );
    assert_eq!(got.last_login_at, Some(NOW + 12));

    let links = tx.oidc_links_for_user(user).await.expect("links");
    assert_eq!(links.len(), 2);
    assert_eq!((links[0].id, links[1].id), (l1.id, l2.id), "oldest first");
    assert_eq!(links[0].last_login_at, Some(NOW + 10));
    assert_eq!(links[0].refresh_token_enc, None);

    assert_eq!(
        tx.oidc_refresh_tokens().await.expect("tokens"),
        [(l2.id, "rt-1".to_string())]
    );
    assert!(
        !tx.oidc_refresh_token_rewrite(l2.id, "rt-stale", "rt-2")
            .await
            .expect("rewrite"),
        "compare-and-swap on the old ciphertext"
    );
    assert!(
        tx.oidc_refresh_token_rewrite(l2.id, "rt-1", "rt-2")
            .await
            .expect("rewrite")
    );
    assert_eq!(
        tx.oidc_refresh_tokens().await.expect("tokens"),
        [(l2.id, "rt-2".to_string())]
    );
    tx.commit().await.expect("commit");

    let mut tx = write(store, b).await;
    assert!(
        tx.oidc_links_for_user(user)
            .await
            .expect("links")
            .is_empty()
    );
    assert!(tx.oidc_refresh_tokens().await.expect("tokens").is_empty());
    assert!(
        tx.oidc_link_by_subject(corp.id, "sub-1")
            .await
            .expect("q")
            .is_none()
    );
    assert!(
        !tx.oidc_refresh_token_rewrite(l2.id, "rt-2", "rt-x")
            .await
            .expect("rewrite")
    );
    tx.commit().await.expect("commit");

    // Deleting a provider takes its links and pending sign-ins with it.
    let mut tx = write(store, a).await;
    assert!(tx.oidc_provider_delete("acme").await.expect("delete"));
    assert!(!tx.oidc_provider_delete("acme").await.expect("delete again"));
    tx.commit().await.expect("commit");
    let mut tx = write(store, a).await;
    assert!(
        tx.oidc_link_by_subject(acme.id, "sub-1")
            .await
            .expect("q")
            .is_none()
    );
    assert!(
        tx.oidc_state_take(&on_acme.state_hash)
            .await
            .expect("take")
            .is_none()
    );
    let links = tx.oidc_links_for_user(user).await.expect("links");
    assert_eq!(links.iter().map(|l| l.id).collect::<Vec<_>>(), [l1.id]);
    assert!(tx.oidc_refresh_tokens().await.expect("tokens").is_empty());
    let names: Vec<String> = tx
        .oidc_provider_list()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["corp"]);
    tx.commit().await.expect("commit");
}

async fn sessions(store: &dyn Store, a: TenantId, user: UserId) {
    let oidc = session(user, a, 1, AuthMethod::Oidc, &["admin", "advisor"]);
    let password = session(user, a, 2, AuthMethod::Password, &[]);
    let mut tx = write(store, a).await;
    tx.insert_session(&oidc).await.expect("insert");
    tx.insert_session(&password).await.expect("insert");
    tx.commit().await.expect("commit");

    let mut tx = store.read(a).await.expect("read");
    for want in [&oidc, &password] {
        let (got, u) = tx
            .session_by_token_hash(&want.token_hash)
            .await
            .expect("q")
            .expect("session");
        assert_eq!((got.id, u.id), (want.id, user));
        assert_eq!(got.auth_method, want.auth_method);
        assert_eq!(got.extra_roles, want.extra_roles);
    }
    let listed = tx.list_user_sessions(user).await.expect("list");
    assert_eq!(listed.len(), 2);
    for want in [&oidc, &password] {
        let got = listed.iter().find(|s| s.id == want.id).expect("listed");
        assert_eq!(got.auth_method, want.auth_method);
        assert_eq!(got.extra_roles, want.extra_roles);
        assert_eq!(got.token_hash, want.token_hash);
    }
}

async fn exercise(store: &dyn Store, db: &TestDb) -> Tenants {
    let (ta, tb) = (tenant("alpha"), tenant("beta"));
    store.bootstrap_tenant(&ta).await.expect("tenant a");
    store.bootstrap_tenant(&tb).await.expect("tenant b");
    let u = user(ta.id);
    let mut tx = write(store, ta.id).await;
    tx.insert_user(&u).await.expect("user");
    tx.commit().await.expect("commit");

    providers(store, db, ta.id, tb.id).await;
    states_and_links(store, ta.id, tb.id, u.id).await;
    sessions(store, ta.id, u.id).await;
    Tenants { a: ta.id, b: tb.id }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let db = sqlite_db().await;
    let store = open(&db).await;
    exercise(store.as_ref(), &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Ok(admin) = std::env::var("AEGIS_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("AEGIS_TEST_REQUIRE_SERVICES").is_err(),
            "AEGIS_TEST_REQUIRE_SERVICES is set but AEGIS_TEST_DATABASE_URL is not"
        );
        eprintln!("SKIPPED: oidc::postgres (AEGIS_TEST_DATABASE_URL not set)");
        return;
    };
    let db = postgres_db(&admin).await;
    let store = open(&db).await;
    let tenants = exercise(store.as_ref(), &db).await;
    drop(store);
    row_level_security(&db, &tenants).await;
}

/// Bypasses the store's `WHERE tenant_id = ...` filters: as the application role, with
/// another tenant set, raw queries must see none of tenant A's OIDC rows.
async fn row_level_security(db: &TestDb, t: &Tenants) {
    let pool = sqlx::PgPool::connect(&db.app_url).await.expect("app role");
    let escapes: bool = sqlx::query_scalar(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&pool)
    .await
    .expect("role");
    assert!(
        !escapes,
        "the check needs a role subject to row-level security"
    );
    for (current, expect_rows) in [(t.b, false), (t.a, true)] {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
            .bind(current.0.to_string())
            .execute(&mut *tx)
            .await
            .expect("set tenant");
        for table in ["oidc_providers", "oidc_login_states", "oidc_identities"] {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {table} WHERE tenant_id = $1"
            )))
            .bind(t.a.0)
            .fetch_one(&mut *tx)
            .await
            .expect("count");
            assert_eq!(
                n > 0,
                expect_rows,
                "{table} seen from tenant {current}: {n} rows"
            );
        }
    }
    pool.close().await;
}

//! PostgreSQL backend. The application connects as a non-owner role without BYPASSRLS;
//! every transaction first sets `app.current_tenant_id` (transaction-local), and the
//! row-level security policies confine it to that tenant's rows.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres};

use crate::ConnectOptions;
use crate::migrate::{CREATE_MIGRATIONS_TABLE, MIGRATIONS_POSTGRES};

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

/// A transaction bound to one tenant through `set_config(..., true)`.
pub struct PgTx {
    tx: sqlx::Transaction<'static, Postgres>,
    tenant: TenantId,
}

fn options(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| CoreError::Invalid(format!("database_url: {e}")))
}

async fn pool(url: &str, opts: &ConnectOptions) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(opts.max_connections.max(1))
        .acquire_timeout(Duration::from_secs(opts.acquire_timeout_secs))
        .connect_with(options(url)?)
        .await
        .map_err(db_err)
}

/// Facts about the role a URL connects as, checked before serving in production.
#[derive(Clone, Debug)]
pub struct RoleFacts {
    pub name: String,
    pub superuser: bool,
    pub bypass_rls: bool,
}

impl PgStore {
    /// Connects as the application role.
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<Self> {
        Ok(PgStore {
            pool: pool(url, opts).await?,
        })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the connected role could escape row-level security.
    pub async fn role_facts(&self) -> Result<RoleFacts> {
        let row: (String, bool, bool) = sqlx::query_as(
            "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(RoleFacts {
            name: row.0,
            superuser: row.1,
            bypass_rls: row.2,
        })
    }

    async fn begin(&self, tenant: TenantId, read_only: bool) -> Result<PgTx> {
        let mut tx = if read_only {
            self.pool.begin_with("BEGIN READ ONLY").await
        } else {
            self.pool.begin().await
        }
        .map_err(db_err)?;
        sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
            .bind(tenant.0.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok(PgTx { tx, tenant })
    }
}

/// Applies pending migrations as the owner, then grants the application role exactly
/// what it needs: no UPDATE or DELETE on the audit log, no DDL.
pub async fn migrate(owner_url: &str, app_url: &str) -> Result<Vec<String>> {
    let pool = pool(owner_url, &ConnectOptions::default()).await?;
    // Serialise concurrent migrators (several instances starting at once).
    let mut lock = pool.begin().await.map_err(db_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock(7311893201)")
        .execute(&mut *lock)
        .await
        .map_err(db_err)?;
    sqlx::query(CREATE_MIGRATIONS_TABLE)
        .execute(&mut *lock)
        .await
        .map_err(db_err)?;
    let mut applied = Vec::new();
    for (version, name, script) in MIGRATIONS_POSTGRES {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM aegis_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *lock)
                .await
                .map_err(db_err)?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(*script)
            .execute(&mut *lock)
            .await
            .map_err(db_err)?;
        sqlx::query("INSERT INTO aegis_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(*version)
            .bind(*name)
            .bind(aegis_core::clock::now_millis())
            .execute(&mut *lock)
            .await
            .map_err(db_err)?;
        applied.push(format!("{version:04}_{name}"));
    }
    let app_role = options(app_url)?.get_username().to_string();
    let owner: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *lock)
        .await
        .map_err(db_err)?;
    if app_role != owner {
        let role: String = sqlx::query_scalar("SELECT quote_ident($1)")
            .bind(app_role.clone())
            .fetch_one(&mut *lock)
            .await
            .map_err(db_err)?;
        let grants = format!(
            "GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON aegis_migrations TO {role};
             GRANT SELECT, INSERT, UPDATE ON tenants TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON users, sessions TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON mfa_totp, mfa_backup_codes, mfa_challenges TO {role};
             GRANT SELECT, INSERT, DELETE ON email_tokens TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON oidc_providers, oidc_login_states, oidc_identities TO {role};
             GRANT SELECT, INSERT ON audit_events TO {role};
             REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM {role};"
        );
        sqlx::raw_sql(AssertSqlSafe(grants))
            .execute(&mut *lock)
            .await
            .map_err(db_err)?;
    }
    lock.commit().await.map_err(db_err)?;
    pool.close().await;
    Ok(applied)
}

crate::common::impl_backend!(PgStore, PgTx, sqlx::Postgres, "postgres");

#[async_trait]
impl aegis_core::store::Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>> {
        self.registry_by_slug(slug).await
    }

    async fn tenant_by_host(&self, host: &str) -> Result<Option<Tenant>> {
        self.registry_by_host(host).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.registry_list().await
    }

    async fn bootstrap_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.registry_bootstrap(tenant).await
    }

    async fn write(&self, tenant: TenantId) -> Result<Box<dyn TenantTx>> {
        Ok(Box::new(self.begin(tenant, false).await?))
    }

    async fn read(&self, tenant: TenantId) -> Result<Box<dyn TenantTx>> {
        Ok(Box::new(self.begin(tenant, true).await?))
    }
}

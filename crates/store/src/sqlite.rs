//! SQLite backend: one file, WAL journal, busy timeout, foreign keys on, and
//! `BEGIN IMMEDIATE` for write transactions so concurrent writers queue instead of
//! failing on a lock upgrade.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use crate::ConnectOptions;
use crate::migrate::{CREATE_MIGRATIONS_TABLE, MIGRATIONS_SQLITE};

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// A transaction bound to one tenant.
pub struct SqliteTx {
    tx: sqlx::Transaction<'static, Sqlite>,
    tenant: TenantId,
}

fn options(url: &str) -> Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| CoreError::Invalid(format!("database_url: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10)))
}

impl SqliteStore {
    /// Opens (creating if missing) the database file.
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(opts.acquire_timeout_secs))
            .connect_with(options(url)?)
            .await
            .map_err(db_err)?;
        Ok(SqliteStore { pool })
    }

    /// The underlying pool (used by tests and the CLI).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Applies pending SQLite migrations, each in its own transaction.
pub async fn migrate(url: &str) -> Result<Vec<String>> {
    let store = SqliteStore::connect(url, &ConnectOptions::default()).await?;
    let pool = store.pool;
    sqlx::query(CREATE_MIGRATIONS_TABLE)
        .execute(&pool)
        .await
        .map_err(db_err)?;
    let mut applied = Vec::new();
    for (version, name, script) in MIGRATIONS_SQLITE {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM aegis_migrations WHERE version = ?1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(*script)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("INSERT INTO aegis_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)")
            .bind(*version)
            .bind(*name)
            .bind(aegis_core::clock::now_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        applied.push(format!("{version:04}_{name}"));
    }
    pool.close().await;
    Ok(applied)
}

crate::common::impl_backend!(SqliteStore, SqliteTx, sqlx::Sqlite, "sqlite");

#[async_trait]
impl aegis_core::store::Store for SqliteStore {
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
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        Ok(Box::new(SqliteTx { tx, tenant }))
    }

    async fn read(&self, tenant: TenantId) -> Result<Box<dyn TenantTx>> {
        let tx = self.pool.begin().await.map_err(db_err)?;
        Ok(Box::new(SqliteTx { tx, tenant }))
    }
}

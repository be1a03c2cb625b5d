//! Storage backends for Aegis: SQLite (embedded default) and PostgreSQL (row-level
//! security), both implementing `aegis_core::store::Store`. SQL lives in
//! `sql/<backend>/<name>.sql`; both backends carry the same set of queries.

mod common;
mod migrate;
mod oidc;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::sync::Arc;

use aegis_core::store::Store;
use aegis_core::{CoreError, Result};

pub use migrate::{MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE};

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Recognises the backend from a `sqlite:` or `postgres(ql)://` URL.
    pub fn of_url(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(CoreError::Invalid(
                "database_url: must start with sqlite: or postgres://".into(),
            ))
        }
    }
}

/// Pool sizing and connection settings.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 16,
            acquire_timeout_secs: 5,
        }
    }
}

/// Opens the store named by `url` (the application role's connection).
pub async fn open(url: &str, opts: &ConnectOptions) -> Result<Arc<dyn Store>> {
    Ok(match Backend::of_url(url)? {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(url, opts).await?),
        Backend::Postgres => Arc::new(postgres::PgStore::connect(url, opts).await?),
    })
}

/// Applies pending migrations. For PostgreSQL `owner_url` is the schema owner and
/// `app_url` names the application role that receives its (limited) grants.
pub async fn migrate(owner_url: &str, app_url: &str) -> Result<Vec<String>> {
    match Backend::of_url(owner_url)? {
        Backend::Sqlite => sqlite::migrate(owner_url).await,
        Backend::Postgres => postgres::migrate(owner_url, app_url).await,
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> CoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return CoreError::Conflict("already exists".into());
    }
    CoreError::Storage(e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn names(dir: &str) -> BTreeSet<String> {
        std::fs::read_dir(format!("{}/{dir}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn both_backends_have_the_same_queries() {
        let lite = names("sql/sqlite");
        assert!(!lite.is_empty());
        assert_eq!(lite, names("sql/postgres"));
    }

    #[test]
    fn both_backends_have_the_same_migrations() {
        assert_eq!(names("migrations/sqlite"), names("migrations/postgres"));
        assert_eq!(
            super::MIGRATIONS_SQLITE.len(),
            names("migrations/sqlite").len()
        );
        assert_eq!(
            super::MIGRATIONS_POSTGRES.len(),
            names("migrations/postgres").len()
        );
    }
}

//! Embedded migrations, applied in order and recorded in `aegis_migrations`.

/// A numbered migration: (version, name, SQL).
pub type Migration = (i64, &'static str, &'static str);

/// SQLite migrations, same numbering as PostgreSQL.
pub const MIGRATIONS_SQLITE: &[Migration] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (2, "mfa", include_str!("../migrations/sqlite/0002_mfa.sql")),
    (
        3,
        "mfa_policy",
        include_str!("../migrations/sqlite/0003_mfa_policy.sql"),
    ),
    (
        4,
        "email_tokens",
        include_str!("../migrations/sqlite/0004_email_tokens.sql"),
    ),
    (
        5,
        "email_verification",
        include_str!("../migrations/sqlite/0005_email_verification.sql"),
    ),
    (
        6,
        "oidc",
        include_str!("../migrations/sqlite/0006_oidc.sql"),
    ),
];

/// PostgreSQL migrations, same numbering as SQLite.
pub const MIGRATIONS_POSTGRES: &[Migration] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "mfa",
        include_str!("../migrations/postgres/0002_mfa.sql"),
    ),
    (
        3,
        "mfa_policy",
        include_str!("../migrations/postgres/0003_mfa_policy.sql"),
    ),
    (
        4,
        "email_tokens",
        include_str!("../migrations/postgres/0004_email_tokens.sql"),
    ),
    (
        5,
        "email_verification",
        include_str!("../migrations/postgres/0005_email_verification.sql"),
    ),
    (
        6,
        "oidc",
        include_str!("../migrations/postgres/0006_oidc.sql"),
    ),
];

/// Bookkeeping table, identical on both backends.
pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS aegis_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

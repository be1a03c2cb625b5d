-- Aegis schema, SQLite. Ids are UUIDv7 stored as 16-byte BLOBs; times are Unix milliseconds.
CREATE TABLE tenants (
    id          BLOB PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    host        TEXT UNIQUE,
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    tenant_id           BLOB NOT NULL REFERENCES tenants(id),
    id                  BLOB PRIMARY KEY,
    email               TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    password_algorithm  TEXT NOT NULL CHECK (password_algorithm IN ('argon2id', 'bcrypt')),
    role                TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    failed_attempts     INTEGER NOT NULL DEFAULT 0,
    locked_until        INTEGER,
    last_login_at       INTEGER,
    last_login_ip       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE sessions (
    tenant_id     BLOB NOT NULL REFERENCES tenants(id),
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    BLOB NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    ip            TEXT,
    user_agent    TEXT
);
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_by_expiry ON sessions (tenant_id, expires_at);

CREATE TABLE audit_events (
    tenant_id    BLOB NOT NULL REFERENCES tenants(id),
    id           BLOB PRIMARY KEY,
    occurred_at  INTEGER NOT NULL,
    request_id   TEXT,
    actor_id     BLOB,
    actor_kind   TEXT NOT NULL,
    action       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    details      TEXT NOT NULL,
    risk_score   INTEGER NOT NULL
);
CREATE INDEX audit_by_tenant_id ON audit_events (tenant_id, id);
CREATE INDEX audit_by_actor ON audit_events (tenant_id, actor_id, id);

-- The audit log is append-only: no statement may change or remove an entry.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

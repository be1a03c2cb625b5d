-- Aegis schema, PostgreSQL. Run as the owner role; the application connects as a
-- non-owner role (granted by `aegis migrate`) and is confined by row-level security.
CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    host        text UNIQUE,
    disabled    boolean NOT NULL DEFAULT false,
    created_at  bigint NOT NULL
);

CREATE TABLE users (
    tenant_id           uuid NOT NULL REFERENCES tenants(id),
    id                  uuid PRIMARY KEY,
    email               text NOT NULL,
    password_hash       text NOT NULL,
    password_algorithm  text NOT NULL CHECK (password_algorithm IN ('argon2id', 'bcrypt')),
    role                text NOT NULL CHECK (role IN ('admin', 'member')),
    failed_attempts     integer NOT NULL DEFAULT 0,
    locked_until        bigint,
    last_login_at       bigint,
    last_login_ip       text,
    created_at          bigint NOT NULL,
    updated_at          bigint NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE sessions (
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    bigint NOT NULL,
    expires_at    bigint NOT NULL,
    last_seen_at  bigint NOT NULL,
    ip            text,
    user_agent    text
);
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_by_expiry ON sessions (tenant_id, expires_at);

CREATE TABLE audit_events (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    id           uuid PRIMARY KEY,
    occurred_at  bigint NOT NULL,
    request_id   text,
    actor_id     uuid,
    actor_kind   text NOT NULL,
    action       text NOT NULL,
    resource     text NOT NULL,
    outcome      text NOT NULL,
    ip           text,
    user_agent   text,
    details      jsonb NOT NULL,
    risk_score   integer NOT NULL
);
CREATE INDEX audit_by_tenant_id ON audit_events (tenant_id, id);
CREATE INDEX audit_by_actor ON audit_events (tenant_id, actor_id, id);

-- Tenant isolation: every tenant table is confined to the tenant set for the transaction
-- with set_config('app.current_tenant_id', ..., true). No tenant set: no rows.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

-- MFA: TOTP secrets (encrypted by the application, never stored in clear), backup codes
-- (hashes only) and pending second-step challenges (token hashes only).
CREATE TABLE mfa_totp (
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    user_id         uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_enc      text NOT NULL,
    confirmed_at    bigint,
    last_used_step  bigint,
    created_at      bigint NOT NULL
);

CREATE TABLE mfa_backup_codes (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL,
    used_at     bigint,
    created_at  bigint NOT NULL
);
CREATE INDEX mfa_backup_codes_by_user ON mfa_backup_codes (tenant_id, user_id);

CREATE TABLE mfa_challenges (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  bigint NOT NULL,
    attempts    integer NOT NULL DEFAULT 0
);

ALTER TABLE mfa_totp ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_totp FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mfa_totp
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

ALTER TABLE mfa_backup_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_backup_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mfa_backup_codes
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

ALTER TABLE mfa_challenges ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_challenges FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mfa_challenges
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

-- MFA: TOTP secrets (encrypted by the application, never stored in clear), backup codes
-- (hashes only) and pending second-step challenges (token hashes only).
CREATE TABLE mfa_totp (
    tenant_id       BLOB NOT NULL REFERENCES tenants(id),
    user_id         BLOB PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_enc      TEXT NOT NULL,
    confirmed_at    INTEGER,
    last_used_step  INTEGER,
    created_at      INTEGER NOT NULL
);

CREATE TABLE mfa_backup_codes (
    tenant_id   BLOB NOT NULL REFERENCES tenants(id),
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   BLOB NOT NULL,
    used_at     INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX mfa_backup_codes_by_user ON mfa_backup_codes (tenant_id, user_id);

CREATE TABLE mfa_challenges (
    tenant_id   BLOB NOT NULL REFERENCES tenants(id),
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL UNIQUE,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
);

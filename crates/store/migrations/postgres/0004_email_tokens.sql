-- Single-use, short-lived tokens sent by e-mail (password reset). Only hashes are stored.
CREATE TABLE email_tokens (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  bigint NOT NULL,
    created_at  bigint NOT NULL
);
CREATE INDEX email_tokens_by_user ON email_tokens (tenant_id, user_id, purpose);

ALTER TABLE email_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_tokens
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

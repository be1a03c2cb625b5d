-- Single-use, short-lived tokens sent by e-mail (password reset). Only hashes are stored.
CREATE TABLE email_tokens (
    tenant_id   BLOB NOT NULL REFERENCES tenants(id),
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    token_hash  BLOB NOT NULL UNIQUE,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX email_tokens_by_user ON email_tokens (tenant_id, user_id, purpose);

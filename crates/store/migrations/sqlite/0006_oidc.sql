-- Sign-in with upstream OpenID Connect providers. Provider secrets, PKCE verifiers and
-- refresh tokens are field-encrypted by the application; state, browser binding and
-- nonce are stored as hashes only.
ALTER TABLE sessions ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'password'
    CHECK (auth_method IN ('password', 'oidc'));
-- JSON array of role names granted to this session only; NULL when there are none.
ALTER TABLE sessions ADD COLUMN extra_roles TEXT;

CREATE TABLE oidc_providers (
    tenant_id          BLOB NOT NULL REFERENCES tenants(id),
    id                 BLOB PRIMARY KEY,
    name               TEXT NOT NULL,
    -- ProviderSettings as JSON, without the secrets (those are the two columns below).
    settings           TEXT NOT NULL,
    client_secret_enc  TEXT,
    private_key_enc    TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE oidc_login_states (
    tenant_id     BLOB NOT NULL REFERENCES tenants(id),
    id            BLOB PRIMARY KEY,
    provider_id   BLOB NOT NULL REFERENCES oidc_providers(id) ON DELETE CASCADE,
    state_hash    BLOB NOT NULL UNIQUE,
    binding_hash  BLOB NOT NULL,
    nonce_hash    BLOB NOT NULL,
    verifier_enc  TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX oidc_login_states_by_expiry ON oidc_login_states (tenant_id, expires_at);

-- Links are keyed by the provider's subject, never by e-mail address.
CREATE TABLE oidc_identities (
    tenant_id          BLOB NOT NULL REFERENCES tenants(id),
    id                 BLOB PRIMARY KEY,
    user_id            BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id        BLOB NOT NULL REFERENCES oidc_providers(id) ON DELETE CASCADE,
    subject            TEXT NOT NULL,
    refresh_token_enc  TEXT,
    created_at         INTEGER NOT NULL,
    last_login_at      INTEGER,
    UNIQUE (provider_id, subject)
);
CREATE INDEX oidc_identities_by_user ON oidc_identities (tenant_id, user_id);

-- Sign-in with upstream OpenID Connect providers. Provider secrets, PKCE verifiers and
-- refresh tokens are field-encrypted by the application; state, browser binding and
-- nonce are stored as hashes only.
ALTER TABLE sessions ADD COLUMN auth_method text NOT NULL DEFAULT 'password'
    CHECK (auth_method IN ('password', 'oidc'));
-- JSON array of role names granted to this session only; NULL when there are none.
ALTER TABLE sessions ADD COLUMN extra_roles text;

CREATE TABLE oidc_providers (
    tenant_id          uuid NOT NULL REFERENCES tenants(id),
    id                 uuid PRIMARY KEY,
    name               text NOT NULL,
    -- ProviderSettings as JSON, without the secrets (those are the two columns below).
    settings           text NOT NULL,
    client_secret_enc  text,
    private_key_enc    text,
    created_at         bigint NOT NULL,
    updated_at         bigint NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE oidc_login_states (
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    id            uuid PRIMARY KEY,
    provider_id   uuid NOT NULL REFERENCES oidc_providers(id) ON DELETE CASCADE,
    state_hash    bytea NOT NULL UNIQUE,
    binding_hash  bytea NOT NULL,
    nonce_hash    bytea NOT NULL,
    verifier_enc  text NOT NULL,
    redirect_uri  text NOT NULL,
    return_to     text NOT NULL,
    created_at    bigint NOT NULL,
    expires_at    bigint NOT NULL
);
CREATE INDEX oidc_login_states_by_expiry ON oidc_login_states (tenant_id, expires_at);

-- Links are keyed by the provider's subject, never by e-mail address.
CREATE TABLE oidc_identities (
    tenant_id          uuid NOT NULL REFERENCES tenants(id),
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id        uuid NOT NULL REFERENCES oidc_providers(id) ON DELETE CASCADE,
    subject            text NOT NULL,
    refresh_token_enc  text,
    created_at         bigint NOT NULL,
    last_login_at      bigint,
    UNIQUE (provider_id, subject)
);
CREATE INDEX oidc_identities_by_user ON oidc_identities (tenant_id, user_id);

ALTER TABLE oidc_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_providers
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

ALTER TABLE oidc_login_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_login_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_login_states
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

ALTER TABLE oidc_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_identities
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

INSERT INTO oidc_identities (tenant_id, id, user_id, provider_id, subject, refresh_token_enc, created_at, last_login_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)

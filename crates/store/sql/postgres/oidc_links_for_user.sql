SELECT id, user_id, provider_id, subject, refresh_token_enc, created_at, last_login_at
FROM oidc_identities WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id

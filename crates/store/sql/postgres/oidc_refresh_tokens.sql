SELECT id, refresh_token_enc FROM oidc_identities
WHERE tenant_id = $1 AND refresh_token_enc IS NOT NULL ORDER BY id

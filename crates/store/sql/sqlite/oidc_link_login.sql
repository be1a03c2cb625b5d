UPDATE oidc_identities SET last_login_at = ?3, refresh_token_enc = COALESCE(?4, refresh_token_enc)
WHERE tenant_id = ?1 AND id = ?2

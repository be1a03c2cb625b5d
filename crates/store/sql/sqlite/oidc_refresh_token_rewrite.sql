UPDATE oidc_identities SET refresh_token_enc = ?3 WHERE tenant_id = ?1 AND id = ?2 AND refresh_token_enc = ?4

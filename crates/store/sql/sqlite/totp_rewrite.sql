UPDATE mfa_totp SET secret_enc = ?3 WHERE tenant_id = ?1 AND user_id = ?2 AND secret_enc = ?4

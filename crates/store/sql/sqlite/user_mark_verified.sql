UPDATE users SET email_verified_at = ?3, updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2 AND email_verified_at IS NULL

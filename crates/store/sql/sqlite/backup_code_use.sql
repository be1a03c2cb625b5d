UPDATE mfa_backup_codes SET used_at = ?3 WHERE tenant_id = ?1 AND id = ?2 AND used_at IS NULL

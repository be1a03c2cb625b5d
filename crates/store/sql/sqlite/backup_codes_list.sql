SELECT id, code_hash, used_at FROM mfa_backup_codes WHERE tenant_id = ?1 AND user_id = ?2 ORDER BY id

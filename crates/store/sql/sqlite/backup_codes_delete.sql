DELETE FROM mfa_backup_codes WHERE tenant_id = ?1 AND user_id = ?2

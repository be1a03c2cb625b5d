INSERT INTO mfa_backup_codes (tenant_id, id, user_id, code_hash, used_at, created_at)
VALUES ($1, $2, $3, $4, NULL, $5)

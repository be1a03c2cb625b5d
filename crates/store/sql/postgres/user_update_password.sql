UPDATE users SET password_hash = $3, password_algorithm = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2

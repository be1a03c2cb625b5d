UPDATE users SET failed_attempts = ?3, locked_until = ?4, updated_at = ?5 WHERE tenant_id = ?1 AND id = ?2

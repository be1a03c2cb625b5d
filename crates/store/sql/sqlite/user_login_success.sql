UPDATE users SET failed_attempts = 0, locked_until = NULL, last_login_at = ?3, last_login_ip = ?4, updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2

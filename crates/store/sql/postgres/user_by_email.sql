SELECT tenant_id, id, email, password_hash, password_algorithm, role, failed_attempts, locked_until, last_login_at, last_login_ip, created_at, updated_at, email_verified_at
FROM users WHERE tenant_id = $1 AND email = $2

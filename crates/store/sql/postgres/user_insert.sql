INSERT INTO users (tenant_id, id, email, password_hash, password_algorithm, role, failed_attempts, locked_until, last_login_at, last_login_ip, created_at, updated_at, email_verified_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)

INSERT INTO sessions (tenant_id, id, user_id, token_hash, created_at, expires_at, last_seen_at, ip, user_agent, auth_method, extra_roles)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)

SELECT s.id AS s_id, s.user_id AS s_user_id, s.token_hash AS s_token_hash, s.created_at AS s_created_at, s.expires_at AS s_expires_at,
       s.last_seen_at AS s_last_seen_at, s.ip AS s_ip, s.user_agent AS s_user_agent,
       s.auth_method AS s_auth_method, s.extra_roles AS s_extra_roles,
       u.tenant_id, u.id, u.email, u.password_hash, u.password_algorithm, u.role, u.failed_attempts, u.locked_until, u.last_login_at, u.last_login_ip, u.created_at, u.updated_at, u.email_verified_at
FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
WHERE s.tenant_id = ?1 AND s.token_hash = ?2

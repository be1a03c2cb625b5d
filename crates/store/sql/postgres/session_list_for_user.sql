SELECT id AS s_id, user_id AS s_user_id, token_hash AS s_token_hash, created_at AS s_created_at, expires_at AS s_expires_at,
       last_seen_at AS s_last_seen_at, ip AS s_ip, user_agent AS s_user_agent,
       auth_method AS s_auth_method, extra_roles AS s_extra_roles
FROM sessions WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC

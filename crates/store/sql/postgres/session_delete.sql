DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND id = $3

UPDATE sessions SET last_seen_at = $3 WHERE tenant_id = $1 AND id = $2

DELETE FROM sessions WHERE tenant_id = ?1 AND (expires_at <= ?2 OR last_seen_at <= ?3)

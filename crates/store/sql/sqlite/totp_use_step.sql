UPDATE mfa_totp SET last_used_step = ?3
WHERE tenant_id = ?1 AND user_id = ?2 AND confirmed_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < ?3)

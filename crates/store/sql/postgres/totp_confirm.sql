UPDATE mfa_totp SET confirmed_at = $3, last_used_step = $4 WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NULL

SELECT id, user_id, expires_at, attempts FROM mfa_challenges WHERE tenant_id = $1 AND token_hash = $2

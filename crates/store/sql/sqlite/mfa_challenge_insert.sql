INSERT INTO mfa_challenges (tenant_id, id, user_id, token_hash, expires_at, attempts)
VALUES (?1, ?2, ?3, ?4, ?5, 0)

INSERT INTO email_tokens (tenant_id, id, user_id, purpose, token_hash, expires_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)

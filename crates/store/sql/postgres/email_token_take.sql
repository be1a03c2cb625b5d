DELETE FROM email_tokens WHERE tenant_id = $1 AND purpose = $2 AND token_hash = $3 AND expires_at > $4
RETURNING user_id

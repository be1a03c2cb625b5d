DELETE FROM email_tokens WHERE tenant_id = $1 AND user_id = $2 AND purpose = $3

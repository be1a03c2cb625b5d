UPDATE oidc_providers SET settings = $3, client_secret_enc = $4, private_key_enc = $5, updated_at = $6
WHERE tenant_id = $1 AND id = $2

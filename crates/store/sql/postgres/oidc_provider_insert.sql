INSERT INTO oidc_providers (tenant_id, id, name, settings, client_secret_enc, private_key_enc, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)

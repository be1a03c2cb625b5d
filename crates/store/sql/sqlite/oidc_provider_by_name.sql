SELECT id, tenant_id, name, settings, client_secret_enc, private_key_enc, created_at, updated_at
FROM oidc_providers WHERE tenant_id = ?1 AND name = ?2

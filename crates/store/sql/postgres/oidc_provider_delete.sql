DELETE FROM oidc_providers WHERE tenant_id = $1 AND name = $2

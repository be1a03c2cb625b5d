SELECT id, slug, name, host, disabled, created_at, mfa_policy FROM tenants ORDER BY created_at, slug

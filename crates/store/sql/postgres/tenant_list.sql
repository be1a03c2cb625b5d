SELECT id, slug, name, host, disabled, created_at, mfa_policy, require_verified_email FROM tenants ORDER BY created_at, slug

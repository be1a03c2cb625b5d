SELECT id, slug, name, host, disabled, created_at, mfa_policy FROM tenants WHERE host = ?1

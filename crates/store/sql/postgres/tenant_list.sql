SELECT id, slug, name, host, disabled, created_at FROM tenants ORDER BY created_at, slug

SELECT id, slug, name, host, disabled, created_at FROM tenants WHERE host = $1

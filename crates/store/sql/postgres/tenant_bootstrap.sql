INSERT INTO tenants (id, slug, name, host, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING

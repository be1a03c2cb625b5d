UPDATE tenants SET require_verified_email = $2 WHERE id = $1

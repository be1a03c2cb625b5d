UPDATE tenants SET disabled = ?2 WHERE slug = ?1

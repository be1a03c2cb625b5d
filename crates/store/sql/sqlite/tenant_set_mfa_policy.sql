UPDATE tenants SET mfa_policy = ?2 WHERE id = ?1

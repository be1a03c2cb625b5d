UPDATE mfa_challenges SET attempts = attempts + 1 WHERE tenant_id = $1 AND id = $2

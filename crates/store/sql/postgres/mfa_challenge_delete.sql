DELETE FROM mfa_challenges WHERE tenant_id = $1 AND id = $2

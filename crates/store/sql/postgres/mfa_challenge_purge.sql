DELETE FROM mfa_challenges WHERE tenant_id = $1 AND expires_at <= $2

DELETE FROM oidc_login_states WHERE tenant_id = ?1 AND expires_at <= ?2

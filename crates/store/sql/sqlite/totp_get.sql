SELECT secret_enc, confirmed_at, last_used_step FROM mfa_totp WHERE tenant_id = ?1 AND user_id = ?2

SELECT user_id, secret_enc FROM mfa_totp WHERE tenant_id = $1 ORDER BY user_id

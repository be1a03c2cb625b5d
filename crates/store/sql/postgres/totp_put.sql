INSERT INTO mfa_totp (tenant_id, user_id, secret_enc, confirmed_at, last_used_step, created_at)
VALUES ($1, $2, $3, NULL, NULL, $4)
ON CONFLICT (user_id) DO UPDATE SET secret_enc = excluded.secret_enc, created_at = excluded.created_at
WHERE mfa_totp.confirmed_at IS NULL

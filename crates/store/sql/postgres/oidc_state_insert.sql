INSERT INTO oidc_login_states (tenant_id, id, provider_id, state_hash, binding_hash, nonce_hash, verifier_enc, redirect_uri, return_to, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)

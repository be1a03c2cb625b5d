DELETE FROM oidc_login_states WHERE tenant_id = ?1 AND state_hash = ?2
RETURNING id, provider_id, state_hash, binding_hash, nonce_hash, verifier_enc, redirect_uri, return_to, created_at, expires_at

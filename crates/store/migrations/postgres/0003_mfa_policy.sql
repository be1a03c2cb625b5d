-- Per-tenant MFA policy: optional, required for admins, or required for everyone.
ALTER TABLE tenants ADD COLUMN mfa_policy text NOT NULL DEFAULT 'optional'
    CHECK (mfa_policy IN ('optional', 'admins', 'everyone'));

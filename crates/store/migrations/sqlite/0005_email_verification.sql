-- E-mail verification: when the address was proven, and whether a tenant requires it
-- before sign-in.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
ALTER TABLE tenants ADD COLUMN require_verified_email BOOLEAN NOT NULL DEFAULT 0;

-- E-mail verification: when the address was proven, and whether a tenant requires it
-- before sign-in.
ALTER TABLE users ADD COLUMN email_verified_at bigint;
ALTER TABLE tenants ADD COLUMN require_verified_email boolean NOT NULL DEFAULT false;

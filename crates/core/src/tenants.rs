//! Tenants: creation, listing, disabling. Tenant changes are audited in the acting
//! tenant's log (the system tenant for CLI and platform admins).

use std::sync::Arc;

use serde_json::json;

use crate::audit::{self, Action};
use crate::clock::now_millis;
use crate::ids::{TenantId, UserId};
use crate::model::{MfaPolicy, RequestMeta, Tenant};
use crate::store::Store;
use crate::{CoreError, Result};

/// Slug of the tenant every installation starts with.
pub const DEFAULT_TENANT_SLUG: &str = "default";

/// Validates a tenant slug: 1-63 of `a-z`, `0-9`, `-`, not starting or ending with `-`.
pub fn validate_slug(slug: &str) -> Result<()> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(
            "slug: 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'".into(),
        ))
    }
}

fn validate_host(host: &str) -> Result<String> {
    let host = host.trim().to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':');
    if ok {
        Ok(host)
    } else {
        Err(CoreError::Invalid("host: must be a host name".into()))
    }
}

/// Tenant administration.
#[derive(Clone)]
pub struct TenantService {
    store: Arc<dyn Store>,
}

impl TenantService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        TenantService { store }
    }

    /// Creates the default tenant when it does not exist yet; returns it.
    pub async fn ensure_default(&self) -> Result<Tenant> {
        if let Some(t) = self.store.tenant_by_slug(DEFAULT_TENANT_SLUG).await? {
            return Ok(t);
        }
        let t = Tenant {
            id: TenantId::new(),
            slug: DEFAULT_TENANT_SLUG.into(),
            name: "Default".into(),
            host: None,
            disabled: false,
            created_at: now_millis(),
            mfa_policy: MfaPolicy::Optional,
            require_verified_email: false,
        };
        self.store.bootstrap_tenant(&t).await?;
        // Another instance may have won the race; read back whichever exists.
        self.store
            .tenant_by_slug(DEFAULT_TENANT_SLUG)
            .await?
            .ok_or(CoreError::NotFound("default tenant"))
    }

    /// Creates a tenant; audited in `acting_tenant`.
    pub async fn create(
        &self,
        acting_tenant: TenantId,
        actor: Option<UserId>,
        slug: &str,
        name: &str,
        host: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Tenant> {
        validate_slug(slug)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(CoreError::Invalid("name: 1-200 characters".into()));
        }
        let host = host.map(validate_host).transpose()?;
        let tenant = Tenant {
            id: TenantId::new(),
            slug: slug.to_string(),
            name: name.to_string(),
            host,
            disabled: false,
            created_at: now_millis(),
            mfa_policy: MfaPolicy::Optional,
            require_verified_email: false,
        };
        let mut tx = self.store.write(acting_tenant).await?;
        tx.insert_tenant(&tenant).await?;
        let ev = audit::event(
            acting_tenant,
            meta,
            actor,
            Action::TenantCreate,
            format!("tenant:{}", tenant.slug),
            true,
            json!({"tenant_id": tenant.id, "host": tenant.host}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        Ok(tenant)
    }

    /// Sets who in `tenant` must use MFA; audited in that tenant.
    pub async fn set_mfa_policy(
        &self,
        tenant: TenantId,
        actor: Option<UserId>,
        policy: MfaPolicy,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mut tx = self.store.write(tenant).await?;
        tx.set_tenant_mfa_policy(policy).await?;
        let ev = audit::event(
            tenant,
            meta,
            actor,
            Action::TenantMfaPolicy,
            format!("tenant:{tenant}"),
            true,
            json!({"mfa_policy": policy.as_str()}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await
    }

    /// Sets whether users of `tenant` must verify their e-mail before signing in.
    pub async fn set_email_policy(
        &self,
        tenant: TenantId,
        actor: Option<UserId>,
        require_verified: bool,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mut tx = self.store.write(tenant).await?;
        tx.set_tenant_email_policy(require_verified).await?;
        let ev = audit::event(
            tenant,
            meta,
            actor,
            Action::TenantEmailPolicy,
            format!("tenant:{tenant}"),
            true,
            json!({"require_verified_email": require_verified}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await
    }

    /// Disables or re-enables a tenant; audited in `acting_tenant`.
    pub async fn set_disabled(
        &self,
        acting_tenant: TenantId,
        actor: Option<UserId>,
        slug: &str,
        disabled: bool,
        meta: &RequestMeta,
    ) -> Result<()> {
        if disabled && slug == DEFAULT_TENANT_SLUG {
            return Err(CoreError::Invalid(
                "slug: the default tenant cannot be disabled".into(),
            ));
        }
        let mut tx = self.store.write(acting_tenant).await?;
        if !tx.set_tenant_disabled(slug, disabled).await? {
            return Err(CoreError::NotFound("tenant"));
        }
        let action = if disabled {
            Action::TenantDisable
        } else {
            Action::TenantEnable
        };
        let ev = audit::event(
            acting_tenant,
            meta,
            actor,
            action,
            format!("tenant:{slug}"),
            true,
            json!({}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await
    }

    /// All tenants.
    pub async fn list(&self) -> Result<Vec<Tenant>> {
        self.store.list_tenants().await
    }
}

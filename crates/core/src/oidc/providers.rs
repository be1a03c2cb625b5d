//! Administration of a tenant's upstream providers: create or replace, list, delete,
//! and re-encryption of their secrets under a new key.

use secrecy::ExposeSecret;
use serde_json::json;

use crate::audit::{self, Action};
use crate::clock::now_millis;
use crate::fieldcrypt::{KeyRing, Place};
use crate::ids::{TenantId, UserId};
use crate::model::RequestMeta;
use crate::store::Store;
use crate::{CoreError, Result};

use super::provider::validate_provider_name;
use super::service::{OidcService, refresh_place};
use super::{OidcProvider, ProviderInput, ProviderView};

/// Where a provider secret lives (bound into its ciphertext).
fn secret_place<'a>(tenant: &'a str, column: &'a str, row: &'a str) -> Place<'a> {
    Place {
        tenant,
        table: "oidc_providers",
        column,
        row,
    }
}

/// A provider as a sign-in page lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PublicProvider {
    pub name: String,
    pub display_name: String,
}

impl OidcService {
    /// Creates or replaces the provider `input.name`. A replacement that leaves out the
    /// client secret or private key keeps the stored one. Returns the view and whether
    /// it was created.
    pub async fn set_provider(
        &self,
        tenant: TenantId,
        input: ProviderInput,
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<(ProviderView, bool)> {
        validate_provider_name(&input.name)?;
        let mut settings = input.settings;
        let mut tx = self.store.write(tenant).await?;
        let existing = tx.oidc_provider_by_name(&input.name).await?;
        settings.validate(
            self.config.allow_http,
            existing
                .as_ref()
                .is_some_and(|p| p.client_secret_enc.is_some()),
            existing
                .as_ref()
                .is_some_and(|p| p.private_key_enc.is_some()),
        )?;
        let now = now_millis();
        let id = existing.as_ref().map_or_else(uuid::Uuid::now_v7, |p| p.id);
        let (tenant_s, id_s) = (tenant.to_string(), id.to_string());
        let encrypt = |value: &Option<secrecy::SecretString>,
                       column: &str,
                       kept: Option<&String>|
         -> Result<Option<String>> {
            match value {
                Some(v) => Ok(Some(self.keys.encrypt(
                    v.expose_secret().as_bytes(),
                    &secret_place(&tenant_s, column, &id_s),
                )?)),
                None => Ok(kept.cloned()),
            }
        };
        let provider = OidcProvider {
            id,
            tenant_id: tenant,
            name: input.name.clone(),
            client_secret_enc: encrypt(
                &settings.client_secret,
                "client_secret_enc",
                existing.as_ref().and_then(|p| p.client_secret_enc.as_ref()),
            )?,
            private_key_enc: encrypt(
                &settings.private_key_pem,
                "private_key_enc",
                existing.as_ref().and_then(|p| p.private_key_enc.as_ref()),
            )?,
            settings: {
                settings.client_secret = None;
                settings.private_key_pem = None;
                settings
            },
            created_at: existing.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
        };
        let view = ProviderView::from(&provider);
        let (action, before) = match &existing {
            Some(old) => {
                tx.oidc_provider_update(&provider).await?;
                (
                    Action::OidcProviderUpdate,
                    serde_json::to_value(ProviderView::from(old)).unwrap_or_default(),
                )
            }
            None => {
                tx.oidc_provider_insert(&provider).await?;
                (Action::OidcProviderCreate, serde_json::Value::Null)
            }
        };
        let ev = audit::event(
            tenant,
            meta,
            actor,
            action,
            format!("oidc_provider:{}", provider.name),
            true,
            json!({
                "before": before,
                "after": serde_json::to_value(&view).unwrap_or_default(),
                "client_secret_changed": provider.client_secret_enc
                    != existing.as_ref().and_then(|p| p.client_secret_enc.clone()),
                "private_key_changed": provider.private_key_enc
                    != existing.as_ref().and_then(|p| p.private_key_enc.clone()),
            }),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        Ok((view, existing.is_none()))
    }

    /// The tenant's providers, secrets left out.
    pub async fn list_providers(&self, tenant: TenantId) -> Result<Vec<ProviderView>> {
        let mut tx = self.store.read(tenant).await?;
        Ok(tx
            .oidc_provider_list()
            .await?
            .iter()
            .map(ProviderView::from)
            .collect())
    }

    /// The enabled providers, as sign-in pages show them.
    pub async fn public_providers(&self, tenant: TenantId) -> Result<Vec<PublicProvider>> {
        let mut tx = self.store.read(tenant).await?;
        Ok(tx
            .oidc_provider_list()
            .await?
            .into_iter()
            .filter(|p| p.settings.enabled)
            .map(|p| PublicProvider {
                display_name: p.settings.display_name_or(&p.name).to_string(),
                name: p.name,
            })
            .collect())
    }

    /// Deletes a provider, its links and pending sign-ins. Sessions already created
    /// through it stay until they end or are revoked.
    pub async fn delete_provider(
        &self,
        tenant: TenantId,
        name: &str,
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mut tx = self.store.write(tenant).await?;
        let old = tx
            .oidc_provider_by_name(name)
            .await?
            .ok_or(CoreError::NotFound("provider"))?;
        tx.oidc_provider_delete(name).await?;
        let ev = audit::event(
            tenant,
            meta,
            actor,
            Action::OidcProviderDelete,
            format!("oidc_provider:{name}"),
            true,
            json!({"before": serde_json::to_value(ProviderView::from(&old)).unwrap_or_default()}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await
    }
}

/// Re-encrypts a tenant's provider secrets and stored refresh tokens under the active
/// key; returns how many values were rewritten.
pub async fn rotate_keys(store: &dyn Store, keys: &KeyRing, tenant: TenantId) -> Result<usize> {
    let tenant_s = tenant.to_string();
    let mut rewritten = 0;
    let mut tx = store.write(tenant).await?;
    for mut p in tx.oidc_provider_list().await? {
        let id_s = p.id.to_string();
        let mut changed = false;
        for (column, value) in [
            ("client_secret_enc", &mut p.client_secret_enc),
            ("private_key_enc", &mut p.private_key_enc),
        ] {
            if let Some(stored) = value.as_ref()
                && keys.needs_rotation(stored)
            {
                let place = secret_place(&tenant_s, column, &id_s);
                let clear = keys.decrypt(stored, &place)?;
                *value = Some(keys.encrypt(&clear, &place)?);
                changed = true;
                rewritten += 1;
            }
        }
        if changed {
            tx.oidc_provider_update(&p).await?;
        }
    }
    for (id, stored) in tx.oidc_refresh_tokens().await? {
        if keys.needs_rotation(&stored) {
            let id_s = id.to_string();
            let place = refresh_place(&tenant_s, &id_s);
            let fresh = keys.encrypt(&keys.decrypt(&stored, &place)?, &place)?;
            if tx.oidc_refresh_token_rewrite(id, &stored, &fresh).await? {
                rewritten += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(rewritten)
}

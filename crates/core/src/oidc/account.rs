//! Whose account a verified provider sign-in lands in — the linked one, an existing one
//! linked by a verified address, or a new one — and the session it gets.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::audit::{self, Action};
use crate::clock::now_millis;
use crate::crypto::random_token;
use crate::email::normalize_email;
use crate::ids::TenantId;
use crate::model::{AuthMethod, HashAlgorithm, RequestMeta, Role, User};
use crate::sessions::{NewSession, new_session_with, record_sign_in, user_resource};
use crate::{CoreError, Result};

use super::roles::{claim, claim_str, map_roles};
use super::service::{OidcService, refresh_place};
use super::{OidcFailure, OidcLink, OidcProvider};

impl OidcService {
    /// Finds, links or creates the local user for verified `claims`, and creates the
    /// session with the roles the claims map to — one transaction with its audit entries.
    pub(super) async fn sign_in(
        &self,
        tenant: TenantId,
        provider: &OidcProvider,
        claims: &Value,
        refresh_token: Option<&SecretString>,
        meta: &RequestMeta,
    ) -> Result<NewSession> {
        let subject = claim_str(claims, "sub").unwrap_or_default().to_string();
        let settings = &provider.settings;
        let email = claim_str(claims, &settings.claims.email).and_then(|e| normalize_email(e).ok());
        let email_verified = settings.trust_email
            || matches!(
                claim(claims, &settings.claims.email_verified),
                Some(Value::Bool(true))
            )
            || claim_str(claims, &settings.claims.email_verified) == Some("true");
        let plan = self
            .plan(tenant, provider, &subject, email.as_deref(), email_verified)
            .await?;
        let now = now_millis();
        let roles = map_roles(&settings.role_rules, claims);
        let mut tx = self.store.write(tenant).await?;
        let (user, link_id, created_link) = match plan {
            Plan::Linked(link) => {
                let user = tx
                    .user_by_id(link.user_id)
                    .await?
                    .ok_or(CoreError::Oidc(OidcFailure::NoAccount))?;
                (user, link.id, false)
            }
            Plan::LinkExisting(user) => (user, uuid::Uuid::now_v7(), true),
            Plan::Provision {
                email,
                password_hash,
            } => {
                let user = User::new_account(
                    tenant,
                    email,
                    password_hash,
                    HashAlgorithm::Argon2id,
                    Role::Member,
                    now,
                    email_verified.then_some(now),
                );
                tx.insert_user(&user).await.map_err(|e| match e {
                    CoreError::Conflict(_) => CoreError::Oidc(OidcFailure::EmailConflict),
                    other => other,
                })?;
                let ev = audit::event(
                    tenant,
                    meta,
                    Some(user.id),
                    Action::UserRegister,
                    user_resource(user.id),
                    true,
                    json!({"method": "oidc", "provider": provider.name, "role": "member"}),
                );
                tx.append_audit(&ev).await?;
                (user, uuid::Uuid::now_v7(), true)
            }
        };
        let tenant_s = tenant.to_string();
        let refresh_enc = refresh_token
            .map(|t| {
                self.keys.encrypt(
                    t.expose_secret().as_bytes(),
                    &refresh_place(&tenant_s, &link_id.to_string()),
                )
            })
            .transpose()?;
        if created_link {
            let link = OidcLink {
                id: link_id,
                user_id: user.id,
                provider_id: provider.id,
                subject: subject.clone(),
                refresh_token_enc: refresh_enc.clone(),
                created_at: now,
                last_login_at: Some(now),
            };
            tx.oidc_link_insert(&link).await?;
            let ev = audit::event(
                tenant,
                meta,
                Some(user.id),
                Action::OidcLink,
                user_resource(user.id),
                true,
                json!({"provider": provider.name, "link_id": link_id}),
            );
            tx.append_audit(&ev).await?;
        } else {
            tx.oidc_link_login(link_id, now, refresh_enc.as_deref())
                .await?;
        }
        let new = new_session_with(
            self.accounts.session_policy(),
            &user,
            meta,
            AuthMethod::Oidc,
            roles.clone(),
        )?;
        let details = json!({
            "method": "oidc",
            "provider": provider.name,
            "roles": roles,
            "refresh_token_stored": refresh_token.is_some(),
        });
        record_sign_in(&mut *tx, &new, &user, meta, now, details).await?;
        tx.commit().await?;
        metrics::counter!("aegis_oidc_logins_total").increment(1);
        Ok(new)
    }

    /// Decides, before any write, whose account this is. A user to provision gets a
    /// password nobody knows (hashed here, outside any transaction): password sign-in
    /// fails for it like any wrong password until a reset sets one.
    async fn plan(
        &self,
        tenant: TenantId,
        provider: &OidcProvider,
        subject: &str,
        email: Option<&str>,
        email_verified: bool,
    ) -> Result<Plan> {
        let existing = {
            let mut tx = self.store.read(tenant).await?;
            if let Some(link) = tx.oidc_link_by_subject(provider.id, subject).await? {
                return Ok(Plan::Linked(link));
            }
            match email {
                Some(e) => tx.user_by_email(e).await?,
                None => None,
            }
        };
        let settings = &provider.settings;
        match existing {
            // Linking needs both sides verified: otherwise someone who registered the
            // victim's address first (unverified) would receive the victim's sign-in.
            Some(user)
                if settings.link_verified_email
                    && email_verified
                    && user.email_verified_at.is_some() =>
            {
                Ok(Plan::LinkExisting(user))
            }
            Some(_) => Err(CoreError::Oidc(OidcFailure::EmailConflict)),
            None if !settings.jit_provisioning => Err(CoreError::Oidc(OidcFailure::NoAccount)),
            None => {
                let email = email.ok_or(CoreError::Oidc(OidcFailure::EmailMissing))?;
                let random = SecretString::from(random_token()?);
                Ok(Plan::Provision {
                    email: email.to_string(),
                    password_hash: self.accounts.hash_password(&random).await?,
                })
            }
        }
    }
}

/// Whose account a verified sign-in lands in.
enum Plan {
    Linked(OidcLink),
    LinkExisting(User),
    Provision {
        email: String,
        password_hash: String,
    },
}

//! Password reset by e-mail. A request always gets the same answer, whether or not the
//! address has an account, and mail goes out after the answer so timing does not tell
//! either. The token is random, single-use, short-lived and stored only as a hash; a new
//! request kills the previous token. Using it sets the password, clears the lockout,
//! revokes every session, and is audited in the same transaction.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::accounts::AccountService;
use crate::audit::{self, Action};
use crate::clock::{Millis, now_millis};
use crate::crypto::{random_token, sha256};
use crate::email::normalize_email;
use crate::ids::TenantId;
use crate::mail::{self, Mailer};
use crate::model::{HashAlgorithm, RequestMeta};
use crate::sessions::user_resource;
use crate::store::Store;
use crate::{CoreError, Result};

/// How long a reset token lives.
pub const RESET_TTL_MS: Millis = 30 * 60 * 1000;
const PURPOSE: &str = "password_reset";

/// Password reset flows.
#[derive(Clone)]
pub struct RecoveryService {
    store: Arc<dyn Store>,
    accounts: AccountService,
    mailer: Arc<dyn Mailer>,
}

impl RecoveryService {
    pub fn new(store: Arc<dyn Store>, accounts: AccountService, mailer: Arc<dyn Mailer>) -> Self {
        RecoveryService {
            store,
            accounts,
            mailer,
        }
    }

    /// Starts a reset for `email` if it has an account. Answers the same either way.
    pub async fn request_reset(
        &self,
        tenant: TenantId,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let email = normalize_email(email)?;
        let now = now_millis();
        let mut tx = self.store.write(tenant).await?;
        let Some(user) = tx.user_by_email(&email).await? else {
            let ev = audit::event(
                tenant,
                meta,
                None,
                Action::PasswordResetRequest,
                "user",
                false,
                json!({"reason": "unknown_address"}),
            );
            tx.append_audit(&ev).await?;
            return tx.commit().await;
        };
        let token = SecretString::from(random_token()?);
        tx.email_token_replace(
            user.id,
            PURPOSE,
            &sha256(token.expose_secret().as_bytes()),
            now + RESET_TTL_MS,
            now,
        )
        .await?;
        let ev = audit::event(
            tenant,
            meta,
            None,
            Action::PasswordResetRequest,
            user_resource(user.id),
            true,
            json!({"expires_at": now + RESET_TTL_MS}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        let message =
            mail::password_reset(&user.email, token.expose_secret(), RESET_TTL_MS / 60_000);
        let mailer = self.mailer.clone();
        // After the answer: delivery time must not reveal that the account exists.
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&message).await {
                tracing::warn!(error = %e, "password reset mail not delivered");
            }
        });
        Ok(())
    }

    /// Sets a new password with a reset token.
    pub async fn reset(
        &self,
        tenant: TenantId,
        token: &SecretString,
        new_password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<()> {
        let invalid = || CoreError::Invalid("token: invalid, used or expired".into());
        let now = now_millis();
        let mut tx = self.store.write(tenant).await?;
        let user_id = tx
            .email_token_take(PURPOSE, &sha256(token.expose_secret().as_bytes()), now)
            .await?
            .ok_or_else(invalid)?;
        let user = tx.user_by_id(user_id).await?.ok_or_else(invalid)?;
        // A refused password leaves the token unused: the transaction is not committed.
        self.accounts
            .check_new_password(&user.email, new_password)?;
        let hash = self.accounts.hash_password(new_password).await?;
        tx.update_password(user.id, &hash, HashAlgorithm::Argon2id, now)
            .await?;
        tx.update_login_failures(user.id, 0, None, now).await?;
        let revoked = tx.delete_user_sessions(user.id, None).await?;
        let ev = audit::event(
            tenant,
            meta,
            Some(user.id),
            Action::PasswordReset,
            user_resource(user.id),
            true,
            json!({"sessions_revoked": revoked}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await
    }
}

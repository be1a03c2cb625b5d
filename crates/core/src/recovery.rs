//! E-mailed codes: password reset and address verification. A request always gets the
//! same answer, whether or not the address has an account, and mail goes out after the
//! answer so timing does not tell either. Codes are random, single-use, short-lived and
//! stored only as hashes; a new code kills the previous one of the same purpose. Using
//! a reset code sets the password, clears the lockout, revokes every session; using a
//! verification code marks the address verified. Each is audited in its transaction.

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
/// How long a verification code lives.
pub const VERIFY_TTL_MS: Millis = 24 * 60 * 60 * 1000;
const VERIFY: &str = "email_verification";

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

    /// Mails `user` a fresh verification code (killing any earlier one).
    pub async fn start_verification(
        &self,
        tenant: TenantId,
        user: &crate::model::User,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = now_millis();
        let token = SecretString::from(random_token()?);
        let mut tx = self.store.write(tenant).await?;
        tx.email_token_replace(
            user.id,
            VERIFY,
            &sha256(token.expose_secret().as_bytes()),
            now + VERIFY_TTL_MS,
            now,
        )
        .await?;
        let ev = audit::event(
            tenant,
            meta,
            Some(user.id),
            Action::EmailVerificationSent,
            user_resource(user.id),
            true,
            json!({"expires_at": now + VERIFY_TTL_MS}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        let message =
            mail::email_verification(&user.email, token.expose_secret(), VERIFY_TTL_MS / 60_000);
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&message).await {
                tracing::warn!(error = %e, "verification mail not delivered");
            }
        });
        Ok(())
    }

    /// Sends a new code to an unverified account. Answers the same for unknown or
    /// already verified addresses.
    pub async fn resend_verification(
        &self,
        tenant: TenantId,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let email = normalize_email(email)?;
        let user = {
            let mut tx = self.store.read(tenant).await?;
            tx.user_by_email(&email).await?
        };
        match user {
            Some(u) if u.email_verified_at.is_none() => {
                self.start_verification(tenant, &u, meta).await
            }
            _ => Ok(()),
        }
    }

    /// Marks an address verified with its mailed code.
    pub async fn verify_email(
        &self,
        tenant: TenantId,
        token: &SecretString,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = now_millis();
        let mut tx = self.store.write(tenant).await?;
        let user = tx
            .email_token_take(VERIFY, &sha256(token.expose_secret().as_bytes()), now)
            .await?
            .ok_or_else(|| CoreError::Invalid("token: invalid, used or expired".into()))?;
        tx.mark_email_verified(user, now).await?;
        let ev = audit::event(
            tenant,
            meta,
            Some(user),
            Action::EmailVerified,
            user_resource(user),
            true,
            json!({}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await
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

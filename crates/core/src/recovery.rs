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
use crate::ids::{TenantId, UserId};
use crate::mail::{self, Mail, Mailer};
use crate::model::{HashAlgorithm, RequestMeta, User};
use crate::sessions::user_resource;
use crate::store::{Store, TenantTx};
use crate::{CoreError, Result};

/// How long a reset token lives.
pub const RESET_TTL_MS: Millis = 30 * 60 * 1000;
/// How long a verification code lives.
pub const VERIFY_TTL_MS: Millis = 24 * 60 * 60 * 1000;

/// One kind of mailed code: what it is stored as, how long it lives, how its issue is
/// audited and which mail carries it.
struct CodeKind {
    purpose: &'static str,
    ttl_ms: Millis,
    issued: Action,
    mail: fn(&str, &str, i64) -> Mail,
    /// Log line when delivery fails.
    undelivered: &'static str,
}

const RESET: CodeKind = CodeKind {
    purpose: "password_reset",
    ttl_ms: RESET_TTL_MS,
    issued: Action::PasswordResetRequest,
    mail: mail::password_reset,
    undelivered: "password reset mail not delivered",
};

const VERIFICATION: CodeKind = CodeKind {
    purpose: "email_verification",
    ttl_ms: VERIFY_TTL_MS,
    issued: Action::EmailVerificationSent,
    mail: mail::email_verification,
    undelivered: "verification mail not delivered",
};

/// Password reset and e-mail verification flows.
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

    /// Stores a fresh code of `kind` for `user` (killing the previous one) and audits
    /// it, inside `tx`; returns the mail to send once `tx` is committed.
    async fn issue(
        &self,
        tx: &mut Box<dyn TenantTx>,
        kind: &CodeKind,
        user: &User,
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<Mail> {
        let now = now_millis();
        let token = SecretString::from(random_token()?);
        tx.email_token_replace(
            user.id,
            kind.purpose,
            &sha256(token.expose_secret().as_bytes()),
            now + kind.ttl_ms,
            now,
        )
        .await?;
        let ev = audit::event(
            user.tenant_id,
            meta,
            actor,
            kind.issued,
            user_resource(user.id),
            true,
            json!({"expires_at": now + kind.ttl_ms}),
        );
        tx.append_audit(&ev).await?;
        Ok((kind.mail)(
            &user.email,
            token.expose_secret(),
            kind.ttl_ms / 60_000,
        ))
    }

    /// Sends in the background: the answer must not wait for (or reveal by its timing)
    /// a delivery.
    fn send_later(&self, kind: &CodeKind, message: Mail) {
        let mailer = self.mailer.clone();
        let undelivered = kind.undelivered;
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&message).await {
                tracing::warn!(error = %e, "{undelivered}");
            }
        });
    }

    /// Consumes a live code of `kind` inside `tx`; returns its user.
    async fn take(
        tx: &mut Box<dyn TenantTx>,
        kind: &CodeKind,
        token: &SecretString,
    ) -> Result<UserId> {
        tx.email_token_take(
            kind.purpose,
            &sha256(token.expose_secret().as_bytes()),
            now_millis(),
        )
        .await?
        .ok_or_else(invalid_code)
    }

    /// Starts a reset for `email` if it has an account. Answers the same either way.
    pub async fn request_reset(
        &self,
        tenant: TenantId,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let email = normalize_email(email)?;
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
        let message = self.issue(&mut tx, &RESET, &user, None, meta).await?;
        tx.commit().await?;
        self.send_later(&RESET, message);
        Ok(())
    }

    /// Mails `user` a fresh verification code (killing any earlier one).
    pub async fn start_verification(
        &self,
        tenant: TenantId,
        user: &User,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mut tx = self.store.write(tenant).await?;
        let message = self
            .issue(&mut tx, &VERIFICATION, user, Some(user.id), meta)
            .await?;
        tx.commit().await?;
        self.send_later(&VERIFICATION, message);
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
        let mut tx = self.store.write(tenant).await?;
        let user = Self::take(&mut tx, &VERIFICATION, token).await?;
        tx.mark_email_verified(user, now_millis()).await?;
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
        let now = now_millis();
        let mut tx = self.store.write(tenant).await?;
        let user_id = Self::take(&mut tx, &RESET, token).await?;
        let user = tx.user_by_id(user_id).await?.ok_or_else(invalid_code)?;
        // A refused password leaves the token unused: the transaction is not committed.
        self.accounts.check_password(&user.email, new_password)?;
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
        tx.commit().await?;
        self.accounts.forget_sessions(user.id);
        Ok(())
    }
}

fn invalid_code() -> CoreError {
    CoreError::Invalid("token: invalid, used or expired".into())
}

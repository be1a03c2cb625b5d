//! Audit actions and a builder for audit events. Events are written by the same
//! transaction as the action they record, through [`crate::store::TenantTx::append_audit`].

use serde_json::Value;

use crate::clock::now_millis;
use crate::ids::{AuditId, TenantId, UserId};
use crate::model::{AuditEvent, RequestMeta};

/// The security-relevant actions Aegis records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    UserRegister,
    LoginSuccess,
    LoginFailure,
    UserLocked,
    Logout,
    PasswordChange,
    SessionRevoke,
    TenantCreate,
    TenantDisable,
    TenantEnable,
    UserCreate,
    UserImport,
    RateLimited,
    LoginMfaRequired,
    MfaEnroll,
    MfaEnable,
    MfaDisable,
    MfaBackupCodesRegenerate,
    MfaBackupCodeUsed,
    TenantMfaPolicy,
    PasswordResetRequest,
    PasswordReset,
    TenantEmailPolicy,
    EmailVerificationSent,
    EmailVerified,
    OidcStart,
    OidcFailure,
    OidcLink,
    OidcProviderCreate,
    OidcProviderUpdate,
    OidcProviderDelete,
}

impl Action {
    /// The stable name stored in `audit_events.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::UserRegister => "user.register",
            Action::LoginSuccess => "login.success",
            Action::LoginFailure => "login.failure",
            Action::UserLocked => "user.locked",
            Action::Logout => "session.logout",
            Action::PasswordChange => "password.change",
            Action::SessionRevoke => "session.revoke",
            Action::TenantCreate => "tenant.create",
            Action::TenantDisable => "tenant.disable",
            Action::TenantEnable => "tenant.enable",
            Action::UserCreate => "user.create",
            Action::UserImport => "user.import",
            Action::RateLimited => "rate_limit.exceeded",
            Action::LoginMfaRequired => "login.mfa_required",
            Action::MfaEnroll => "mfa.enroll",
            Action::MfaEnable => "mfa.enable",
            Action::MfaDisable => "mfa.disable",
            Action::MfaBackupCodesRegenerate => "mfa.backup_codes.regenerate",
            Action::MfaBackupCodeUsed => "mfa.backup_code.used",
            Action::TenantMfaPolicy => "tenant.mfa_policy",
            Action::PasswordResetRequest => "password.reset_request",
            Action::PasswordReset => "password.reset",
            Action::TenantEmailPolicy => "tenant.email_policy",
            Action::EmailVerificationSent => "email.verification_sent",
            Action::EmailVerified => "email.verified",
            Action::OidcStart => "oidc.start",
            Action::OidcFailure => "oidc.failure",
            Action::OidcLink => "oidc.link",
            Action::OidcProviderCreate => "oidc.provider.create",
            Action::OidcProviderUpdate => "oidc.provider.update",
            Action::OidcProviderDelete => "oidc.provider.delete",
        }
    }

    /// A coarse risk score (0..=100) for alerting.
    fn risk(self) -> i32 {
        match self {
            Action::LoginFailure | Action::RateLimited | Action::OidcFailure => 40,
            Action::OidcLink | Action::OidcProviderUpdate | Action::OidcProviderDelete => 50,
            Action::UserLocked => 70,
            Action::PasswordChange | Action::TenantDisable | Action::MfaDisable => 50,
            Action::MfaBackupCodeUsed | Action::MfaBackupCodesRegenerate => 30,
            _ => 10,
        }
    }
}

/// Builds an [`AuditEvent`] with request facts filled in.
pub fn event(
    tenant: TenantId,
    meta: &RequestMeta,
    actor: Option<UserId>,
    action: Action,
    resource: impl Into<String>,
    success: bool,
    details: Value,
) -> AuditEvent {
    AuditEvent {
        id: AuditId::new(),
        tenant_id: tenant,
        occurred_at: now_millis(),
        request_id: meta.request_id.clone(),
        actor_id: actor,
        actor_kind: if actor.is_some() { "user" } else { "anonymous" }.to_string(),
        action: action.as_str().to_string(),
        resource: resource.into(),
        outcome: if success { "success" } else { "failure" }.to_string(),
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
        details,
        risk_score: action.risk(),
    }
}

/// Records an event that is not part of another write (for example a refused request):
/// its own transaction, in the event's tenant.
pub async fn record(store: &dyn crate::store::Store, event: &AuditEvent) -> crate::Result<()> {
    let mut tx = store.write(event.tenant_id).await?;
    tx.append_audit(event).await?;
    tx.commit().await
}

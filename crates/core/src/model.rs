//! Plain data records shared by services and stores.

use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::{AuditId, SessionId, TenantId, UserId};

/// A tenant: an isolated set of users, sessions and audit events.
#[derive(Clone, Debug, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    /// URL-safe short name, used in the `/t/{slug}` prefix.
    pub slug: String,
    pub name: String,
    /// Optional host name that addresses this tenant.
    pub host: Option<String>,
    pub disabled: bool,
    pub created_at: Millis,
    pub mfa_policy: MfaPolicy,
    /// Users must verify their e-mail address before they can sign in.
    pub require_verified_email: bool,
}

/// Who in a tenant must use MFA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    #[default]
    Optional,
    /// Users with the `admin` role.
    Admins,
    Everyone,
}

impl MfaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaPolicy::Optional => "optional",
            MfaPolicy::Admins => "admins",
            MfaPolicy::Everyone => "everyone",
        }
    }

    pub fn parse(s: &str) -> Option<MfaPolicy> {
        match s {
            "optional" => Some(MfaPolicy::Optional),
            "admins" => Some(MfaPolicy::Admins),
            "everyone" => Some(MfaPolicy::Everyone),
            _ => None,
        }
    }

    /// Whether a user with these roles must have MFA.
    pub fn requires(self, is_admin: bool) -> bool {
        match self {
            MfaPolicy::Optional => false,
            MfaPolicy::Admins => is_admin,
            MfaPolicy::Everyone => true,
        }
    }
}

/// A user's role within its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    /// The stored and wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// How a password hash was produced; recorded so legacy hashes can be upgraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    Argon2id,
    Bcrypt,
}

impl HashAlgorithm {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Argon2id => "argon2id",
            HashAlgorithm::Bcrypt => "bcrypt",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "argon2id" => Some(Self::Argon2id),
            "bcrypt" => Some(Self::Bcrypt),
            _ => None,
        }
    }
}

/// A user account. `password_hash` never leaves the server.
#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    pub password_hash: String,
    pub password_algorithm: HashAlgorithm,
    pub role: Role,
    pub failed_attempts: i32,
    pub locked_until: Option<Millis>,
    pub last_login_at: Option<Millis>,
    pub last_login_ip: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When the address was proven by a mailed code; `None` while unverified.
    pub email_verified_at: Option<Millis>,
}

impl User {
    /// A new account with no sign-in history, created at `now`.
    pub fn new_account(
        tenant_id: TenantId,
        email: String,
        password_hash: String,
        password_algorithm: HashAlgorithm,
        role: Role,
        now: Millis,
        email_verified_at: Option<Millis>,
    ) -> User {
        User {
            id: UserId::new(),
            tenant_id,
            email,
            password_hash,
            password_algorithm,
            role,
            failed_attempts: 0,
            locked_until: None,
            last_login_at: None,
            last_login_ip: None,
            created_at: now,
            updated_at: now,
            email_verified_at,
        }
    }
}

/// What a client may see of a user.
#[derive(Clone, Debug, Serialize)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub roles: Vec<&'static str>,
    pub created_at: Millis,
    pub last_login_at: Option<Millis>,
    pub last_login_ip: Option<String>,
    pub email_verified: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            roles: vec![u.role.as_str()],
            created_at: u.created_at,
            last_login_at: u.last_login_at,
            last_login_ip: u.last_login_ip.clone(),
            email_verified: u.email_verified_at.is_some(),
        }
    }
}

/// A server-side session. Only the SHA-256 of its token is stored.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub token_hash: Vec<u8>,
    pub created_at: Millis,
    /// Absolute expiry, fixed at creation.
    pub expires_at: Millis,
    pub last_seen_at: Millis,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// How the session was authenticated.
    pub auth_method: AuthMethod,
    /// Roles granted for this session only, on top of the user's own role: those an
    /// identity provider's claims mapped to at sign-in (re-evaluated at every sign-in).
    pub extra_roles: Vec<String>,
}

/// How a session was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// E-mail and password (and a second factor when the user has one).
    Password,
    /// An upstream OpenID Connect provider.
    Oidc,
}

impl AuthMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Oidc => "oidc",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "password" => Some(AuthMethod::Password),
            "oidc" => Some(AuthMethod::Oidc),
            _ => None,
        }
    }
}

/// What a client may see of a session.
#[derive(Clone, Debug, Serialize)]
pub struct SessionView {
    pub id: SessionId,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub last_activity_at: Millis,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}

/// Who is making a request: the outcome of authenticating a session.
#[derive(Clone, Debug, Serialize)]
pub struct Identity {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    /// The user's own role, then the session's extra roles, without duplicates.
    pub roles: Vec<String>,
    pub session_id: SessionId,
    pub session_expires_at: Millis,
    pub auth_method: AuthMethod,
    /// The session check's answer for this identity, once rendered (see [`Rendered`]).
    #[serde(skip)]
    pub rendered: Rendered,
}

/// A rendering of an identity, made once by the layer that presents it and then shared.
/// The session check's answer depends on nothing that can change without a new
/// `Identity` (the user, session and roles are the identity's; its tenant's slug never
/// changes), so every check of a cached session sends the bytes of the first.
#[derive(Clone, Default)]
pub struct Rendered(OnceLock<Bytes>);

impl Rendered {
    /// The rendering, made by `render` the first time.
    pub fn get_or_render<E>(&self, render: impl FnOnce() -> Result<Bytes, E>) -> Result<Bytes, E> {
        if let Some(done) = self.0.get() {
            return Ok(done.clone());
        }
        let made = render()?;
        // A concurrent first check may have stored its own: the same bytes.
        Ok(self.0.get_or_init(|| made).clone())
    }
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Rendered(..)"
        } else {
            "Rendered(-)"
        })
    }
}

impl Identity {
    /// Whether the identity holds the tenant `admin` role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == Role::Admin.as_str())
    }
}

/// Request facts recorded with security events.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One entry of the append-only audit log.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEvent {
    pub id: AuditId,
    pub tenant_id: TenantId,
    pub occurred_at: Millis,
    pub request_id: Option<String>,
    /// The acting user, when there is one.
    pub actor_id: Option<UserId>,
    /// A label for the actor (`user`, `anonymous`, `cli`, `system`).
    pub actor_kind: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
    pub risk_score: i32,
}

/// Filters for reading the audit log, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub actor_id: Option<UserId>,
    pub action: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Return only events older than this id (keyset pagination).
    pub before: Option<AuditId>,
    pub limit: i64,
}

/// A user's TOTP enrollment. The secret is stored only encrypted (see `fieldcrypt`).
#[derive(Clone, Debug)]
pub struct TotpRecord {
    pub secret_enc: String,
    /// `None` while enrollment awaits its first valid code.
    pub confirmed_at: Option<Millis>,
    /// The last time step accepted: that step and earlier ones are never accepted again.
    pub last_used_step: Option<i64>,
}

/// One stored backup code (its hash only).
#[derive(Clone, Debug)]
pub struct BackupCodeRecord {
    pub id: uuid::Uuid,
    pub code_hash: Vec<u8>,
    pub used_at: Option<Millis>,
}

/// A pending second login step: password verified, MFA code awaited. Not a session.
#[derive(Clone, Debug)]
pub struct MfaChallenge {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub expires_at: Millis,
    pub attempts: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_is_made_once_and_shared() {
        let r = Rendered::default();
        let mut calls = 0;
        for _ in 0..3 {
            let b = r
                .get_or_render(|| {
                    calls += 1;
                    Ok::<_, ()>(Bytes::from_static(b"answer"))
                })
                .unwrap();
            assert_eq!(b, "answer");
        }
        assert_eq!(calls, 1);
        // A failed rendering stores nothing: the next call tries again.
        let r = Rendered::default();
        assert!(r.get_or_render(|| Err::<Bytes, _>("no")).is_err());
        assert_eq!(
            r.get_or_render(|| Ok::<_, ()>(Bytes::from_static(b"x")))
                .unwrap(),
            "x"
        );
    }
}

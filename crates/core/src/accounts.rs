//! Accounts: registration, password login with lockout, password change, import.
//! Unknown user, wrong password and locked account all answer
//! [`CoreError::InvalidCredentials`] after the same amount of hashing work.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::audit::{self, Action};
use crate::clock::{Millis, now_millis};
use crate::email::normalize_email;
use crate::ids::{TenantId, UserId};
use crate::model::{HashAlgorithm, Identity, RequestMeta, Role, User};
use crate::password::{PasswordHasher, PasswordPolicy, Verified};
use crate::session_cache::{Invalidation, SessionCache};
use crate::sessions::{NewSession, SessionPolicy, new_session, record_sign_in, user_resource};
use crate::store::Store;
use crate::{CoreError, Result};

/// Brute-force lockout settings.
#[derive(Clone, Debug)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account.
    pub threshold: i32,
    /// First lockout duration; doubles with every further failure after unlock.
    pub base_ms: Millis,
    /// Upper bound of the back-off.
    pub max_ms: Millis,
    /// A locked account still accepts its password from the owner's known IPs (its last
    /// login IP and the IPs of its live sessions), so an attacker elsewhere cannot lock
    /// the owner out.
    pub known_ip_bypass: bool,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            threshold: 5,
            base_ms: 60_000,
            max_ms: 3_600_000,
            known_ip_bypass: true,
        }
    }
}

impl LockoutPolicy {
    /// Lock duration after `failures` consecutive failures, if they warrant one.
    pub fn lock_for(&self, failures: i32) -> Option<Millis> {
        if self.threshold <= 0 || failures < self.threshold {
            return None;
        }
        let doublings = u32::try_from(failures - self.threshold)
            .unwrap_or(0)
            .min(20);
        Some(
            self.base_ms
                .saturating_mul(1i64 << doublings)
                .min(self.max_ms),
        )
    }
}

/// The result of the password step.
pub enum LoginOutcome {
    /// Signed in.
    Session(User, NewSession),
    /// The password was right and the user has MFA: a second step is needed.
    MfaRequired(User, crate::mfa::PendingMfa),
}

/// Who creates an account: that decides its role, the audit action and whether its
/// address counts as verified.
#[derive(Clone, Copy, Debug)]
pub struct AccountOrigin {
    role: Role,
    actor: Option<UserId>,
    by_operator: bool,
}

impl AccountOrigin {
    /// Self-registration through the API: a member with an unverified address.
    pub fn self_registered() -> AccountOrigin {
        AccountOrigin {
            role: Role::Member,
            actor: None,
            by_operator: false,
        }
    }

    /// Created by an admin (`actor`) or from the CLI (`None`).
    pub fn by_operator(role: Role, actor: Option<UserId>) -> AccountOrigin {
        AccountOrigin {
            role,
            actor,
            by_operator: true,
        }
    }
}

/// A user row to import with an existing hash (e.g. bcrypt from a legacy system).
#[derive(Clone, Debug)]
pub struct ImportedUser {
    pub email: String,
    pub password_hash: String,
    pub role: Role,
}

/// Account flows.
#[derive(Clone)]
pub struct AccountService {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    password_policy: PasswordPolicy,
    lockout: LockoutPolicy,
    sessions: SessionPolicy,
    session_cache: Arc<SessionCache>,
}

impl AccountService {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        password_policy: PasswordPolicy,
        lockout: LockoutPolicy,
        sessions: SessionPolicy,
        session_cache: Arc<SessionCache>,
    ) -> Self {
        AccountService {
            store,
            hasher,
            password_policy,
            lockout,
            sessions,
            session_cache,
        }
    }

    /// Drops a user's sessions from the session cache, here and on other instances,
    /// after a committed change that deleted them.
    pub(crate) fn forget_sessions(&self, user: UserId) {
        self.session_cache.invalidate(Invalidation::User(user));
    }

    /// Checks a new password against the policy (length, strength, not the address).
    pub(crate) fn check_password(&self, email: &str, password: &SecretString) -> Result<()> {
        let local = email.split('@').next().unwrap_or_default();
        self.password_policy
            .check(password.expose_secret(), &[email, local])
    }

    /// Creates a user with a new password.
    pub async fn register(
        &self,
        tenant: TenantId,
        email: &str,
        password: &SecretString,
        origin: AccountOrigin,
        meta: &RequestMeta,
    ) -> Result<User> {
        let AccountOrigin {
            role,
            actor,
            by_operator,
        } = origin;
        let email = normalize_email(email)?;
        self.check_password(&email, password)?;
        let hash = self.hasher.hash(password).await?;
        let now = now_millis();
        // An operator vouches for the address; a self-registered one must prove it.
        let user = User::new_account(
            tenant,
            email,
            hash,
            HashAlgorithm::Argon2id,
            role,
            now,
            by_operator.then_some(now),
        );
        let mut tx = self.store.write(tenant).await?;
        if tx.user_by_email(&user.email).await?.is_some() {
            return Err(CoreError::Conflict(
                "email: an account with this address already exists".into(),
            ));
        }
        tx.insert_user(&user).await?;
        let action = if by_operator {
            Action::UserCreate
        } else {
            Action::UserRegister
        };
        let ev = audit::event(
            tenant,
            meta,
            actor.or(Some(user.id)),
            action,
            user_resource(user.id),
            true,
            json!({"role": role.as_str()}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Imports users with existing hashes; all rows or none. Returns the count.
    pub async fn import(
        &self,
        tenant: TenantId,
        rows: Vec<ImportedUser>,
        meta: &RequestMeta,
    ) -> Result<usize> {
        let mut tx = self.store.write(tenant).await?;
        let now = now_millis();
        for (i, row) in rows.iter().enumerate() {
            let line = i + 1;
            let email = normalize_email(&row.email)
                .map_err(|e| CoreError::Invalid(format!("row {line}: {e}")))?;
            let algorithm =
                crate::password::detect_algorithm(&row.password_hash).ok_or_else(|| {
                    CoreError::Invalid(format!(
                        "row {line}: password_hash: expected a bcrypt ($2a$/$2b$/$2y$) or $argon2id$ hash"
                    ))
                })?;
            if tx.user_by_email(&email).await?.is_some() {
                return Err(CoreError::Conflict(format!(
                    "row {line}: email: an account with this address already exists"
                )));
            }
            // Imported from a system that already knew these addresses.
            let user = User::new_account(
                tenant,
                email,
                row.password_hash.clone(),
                algorithm,
                row.role,
                now,
                Some(now),
            );
            tx.insert_user(&user).await?;
            let ev = audit::event(
                tenant,
                meta,
                None,
                Action::UserImport,
                user_resource(user.id),
                true,
                json!({"algorithm": algorithm.as_str()}),
            );
            tx.append_audit(&ev).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    async fn audit_failure(
        &self,
        tenant: TenantId,
        user: Option<&User>,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let resource = user.map_or_else(|| "user".to_string(), |u| user_resource(u.id));
        let ev = audit::event(
            tenant,
            meta,
            None,
            Action::LoginFailure,
            resource,
            false,
            json!({"reason": reason}),
        );
        audit::record(self.store.as_ref(), &ev).await?;
        metrics::counter!("aegis_login_failures_total", "reason" => reason.to_string())
            .increment(1);
        Ok(())
    }

    /// Whether `ip` is one the user is known to sign in from: the last login IP or the
    /// IP of one of their live sessions.
    async fn is_known_ip(&self, tenant: TenantId, user: &User, ip: Option<&str>) -> Result<bool> {
        let Some(ip) = ip else {
            return Ok(false);
        };
        if user.last_login_ip.as_deref() == Some(ip) {
            return Ok(true);
        }
        let mut tx = self.store.read(tenant).await?;
        let sessions = tx.list_user_sessions(user.id).await?;
        Ok(sessions.iter().any(|s| s.ip.as_deref() == Some(ip)))
    }

    /// Whether `ip` is known for the account `email` in `tenant` and the lockout policy
    /// lets known IPs through. Used to waive account-keyed rate limits for the owner.
    pub async fn known_ip_waives_lockout(
        &self,
        tenant: TenantId,
        email: &str,
        ip: Option<&str>,
    ) -> Result<bool> {
        if !self.lockout.known_ip_bypass {
            return Ok(false);
        }
        let Ok(email) = normalize_email(email) else {
            return Ok(false);
        };
        let user = {
            let mut tx = self.store.read(tenant).await?;
            tx.user_by_email(&email).await?
        };
        match user {
            Some(user) => self.is_known_ip(tenant, &user, ip).await,
            None => Ok(false),
        }
    }

    /// Password login. On success the caller sets the returned session's token as cookie.
    pub async fn login(
        &self,
        tenant: TenantId,
        email: &str,
        password: &SecretString,
        require_verified_email: bool,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        // The hashing place first: when hashing is saturated, a login is refused before
        // it reads the database (and, with the hasher's refusal delay, a while later),
        // so a flood of them leaves the database and the cores to everyone else. Every
        // path below spends it on one verification, and the refusal is the same whether
        // the account exists or not.
        let place = self.hasher.reserve().await?;
        let found = match normalize_email(email) {
            Ok(email) => {
                let mut tx = self.store.read(tenant).await?;
                tx.user_by_email(&email).await?
            }
            Err(_) => None,
        };
        let Some(user) = found else {
            self.hasher.verify_dummy_in(place, password).await?;
            self.audit_failure(tenant, None, "unknown_user", meta)
                .await?;
            return Err(CoreError::InvalidCredentials);
        };
        let now = now_millis();
        let locked = user.locked_until.is_some_and(|until| until > now);
        let bypass = locked
            && self.lockout.known_ip_bypass
            && self.is_known_ip(tenant, &user, meta.ip.as_deref()).await?;
        if locked && !bypass {
            self.hasher.verify_dummy_in(place, password).await?;
            self.audit_failure(tenant, Some(&user), "locked", meta)
                .await?;
            return Err(CoreError::InvalidCredentials);
        }
        let verified = self
            .hasher
            .verify_in(
                place,
                password,
                &user.password_hash,
                user.password_algorithm,
            )
            .await?;
        if verified == Verified::No {
            self.record_failure(tenant, user.id, "bad_password", meta)
                .await?;
            return Err(CoreError::InvalidCredentials);
        }
        // Only after the password: the refusal reveals nothing to someone without it.
        if require_verified_email && user.email_verified_at.is_none() {
            return Err(CoreError::Forbidden(
                "email address not verified: send the code from the registration mail to POST /api/v1/email/verify, or ask for a new one at POST /api/v1/email/verify/resend".into(),
            ));
        }
        let rehash = if verified == Verified::YesNeedsRehash {
            // The upgrade is optional: when hashing is saturated, sign in now and
            // upgrade at a later login rather than refuse a correct password.
            match self.hasher.hash(password).await {
                Ok(hash) => Some(hash),
                Err(CoreError::Busy { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let mut tx = self.store.write(tenant).await?;
        if let Some(hash) = &rehash {
            tx.update_password(user.id, hash, HashAlgorithm::Argon2id, now)
                .await?;
        }
        if tx
            .totp_get(user.id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some())
        {
            // The password was right; the session waits for the second factor.
            let pending = crate::mfa::start_challenge(&mut tx, user.id).await?;
            let ev = audit::event(
                tenant,
                meta,
                Some(user.id),
                Action::LoginMfaRequired,
                user_resource(user.id),
                true,
                json!({"expires_at": pending.expires_at}),
            );
            tx.append_audit(&ev).await?;
            tx.commit().await?;
            return Ok(LoginOutcome::MfaRequired(user, pending));
        }
        let new = new_session(&self.sessions, &user, meta)?;
        let mut details = json!({});
        if rehash.is_some() {
            details["rehashed_from"] = json!(user.password_algorithm.as_str());
        }
        if bypass {
            details["lockout_waived_for_known_ip"] = json!(true);
        }
        record_sign_in(&mut *tx, &new, &user, meta, now, details).await?;
        tx.commit().await?;
        let mut tx = self.store.read(tenant).await?;
        let user = tx.user_by_id(user.id).await?.unwrap_or(user);
        Ok(LoginOutcome::Session(user, new))
    }

    /// Hashes a new password with the current parameters.
    pub(crate) async fn hash_password(&self, password: &SecretString) -> Result<String> {
        self.hasher.hash(password).await
    }

    /// The session policy (the second MFA step creates sessions the same way).
    pub(crate) fn session_policy(&self) -> &SessionPolicy {
        &self.sessions
    }

    /// Verifies the caller's password (re-authentication for sensitive changes).
    pub async fn verify_password_of(
        &self,
        who: &Identity,
        password: &SecretString,
    ) -> Result<Verified> {
        let user = {
            let mut tx = self.store.read(who.tenant_id).await?;
            tx.user_by_id(who.user_id).await?
        }
        .ok_or(CoreError::Unauthenticated)?;
        self.hasher
            .verify(password, &user.password_hash, user.password_algorithm)
            .await
    }

    /// Counts a failed login (a wrong password or second factor), locking the account
    /// when the threshold is reached.
    pub(crate) async fn record_failure(
        &self,
        tenant: TenantId,
        id: UserId,
        reason: &'static str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = now_millis();
        let mut tx = self.store.write(tenant).await?;
        // Re-read inside the write transaction so concurrent failures all count.
        let Some(user) = tx.user_by_id(id).await? else {
            return Ok(());
        };
        let failures = user.failed_attempts.saturating_add(1);
        let lock = self.lockout.lock_for(failures);
        let locked_until = lock.map(|d| now + d);
        tx.update_login_failures(id, failures, locked_until, now)
            .await?;
        let ev = audit::event(
            tenant,
            meta,
            None,
            Action::LoginFailure,
            user_resource(id),
            false,
            json!({"reason": reason, "failed_attempts": failures}),
        );
        tx.append_audit(&ev).await?;
        metrics::counter!("aegis_login_failures_total", "reason" => reason).increment(1);
        if let Some(duration) = lock {
            let ev = audit::event(
                tenant,
                meta,
                None,
                Action::UserLocked,
                user_resource(id),
                true,
                json!({"failed_attempts": failures, "locked_for_seconds": duration / 1000}),
            );
            tx.append_audit(&ev).await?;
            metrics::counter!("aegis_account_lockouts_total").increment(1);
        }
        tx.commit().await
    }

    /// Changes the caller's password, revokes all their sessions and returns a new one
    /// (a privilege change gets a new token).
    pub async fn change_password(
        &self,
        who: &Identity,
        current: &SecretString,
        new_password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<NewSession> {
        let tenant = who.tenant_id;
        let user = {
            let mut tx = self.store.read(tenant).await?;
            tx.user_by_id(who.user_id)
                .await?
                .ok_or(CoreError::Unauthenticated)?
        };
        let verified = self
            .hasher
            .verify(current, &user.password_hash, user.password_algorithm)
            .await?;
        if verified == Verified::No {
            return Err(CoreError::Forbidden(
                "current_password: does not match".into(),
            ));
        }
        self.check_password(&user.email, new_password)?;
        let hash = self.hasher.hash(new_password).await?;
        let new = new_session(&self.sessions, &user, meta)?;
        let now = now_millis();
        let mut tx = self.store.write(tenant).await?;
        tx.update_password(user.id, &hash, HashAlgorithm::Argon2id, now)
            .await?;
        let revoked = tx.delete_user_sessions(user.id, None).await?;
        tx.insert_session(&new.session).await?;
        let ev = audit::event(
            tenant,
            meta,
            Some(user.id),
            Action::PasswordChange,
            user_resource(user.id),
            true,
            json!({"sessions_revoked": revoked}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        self.forget_sessions(user.id);
        Ok(new)
    }

    /// Lists users of a tenant (admin).
    pub async fn list_users(&self, tenant: TenantId, limit: i64, offset: i64) -> Result<Vec<User>> {
        let mut tx = self.store.read(tenant).await?;
        tx.list_users(limit, offset).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_backs_off_exponentially_and_caps() {
        let p = LockoutPolicy {
            threshold: 3,
            base_ms: 1000,
            max_ms: 5000,
            known_ip_bypass: true,
        };
        assert_eq!(p.lock_for(2), None);
        assert_eq!(p.lock_for(3), Some(1000));
        assert_eq!(p.lock_for(4), Some(2000));
        assert_eq!(p.lock_for(5), Some(4000));
        assert_eq!(p.lock_for(6), Some(5000));
        assert_eq!(p.lock_for(100), Some(5000));
    }
}

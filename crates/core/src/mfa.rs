//! Multi-factor authentication: TOTP enrollment (confirmed only by a valid code),
//! backup codes, disabling, and the second login step.
//!
//! A password login for a user with MFA yields a short-lived, single-purpose challenge
//! (not a session): its token, presented with a TOTP or backup code, creates the session.
//! A TOTP time step is accepted once only per user (the store refuses steps at or before
//! the last used one, atomically), backup codes are single-use, and every action is
//! audited in the transaction that performs it.

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::json;

use crate::accounts::AccountService;
use crate::audit::{self, Action};
use crate::clock::{Millis, now_millis};
use crate::crypto::{random_token, sha256};
use crate::fieldcrypt::{KeyRing, Place};
use crate::ids::{TenantId, UserId};
use crate::model::{Identity, MfaChallenge, RequestMeta, User};
use crate::password::Verified;
use crate::sessions::{NewSession, new_session, record_sign_in, user_resource};
use crate::store::{Store, TenantTx};
use crate::{CoreError, Result, backup_codes, totp};

/// How long the second login step may take.
pub const CHALLENGE_TTL_MS: Millis = 5 * 60 * 1000;
/// Wrong codes allowed per challenge before the login must start again.
pub const CHALLENGE_MAX_ATTEMPTS: i32 = 5;

/// The answer to a second-step challenge.
pub enum SecondFactor<'a> {
    Totp(&'a str),
    BackupCode(&'a str),
}

/// What a user has enrolled.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MfaStatus {
    pub totp_enabled: bool,
    pub totp_pending: bool,
    pub backup_codes_remaining: usize,
}

/// A started TOTP enrollment, shown to the user once.
pub struct Enrollment {
    pub secret_base32: SecretString,
    pub otpauth_uri: SecretString,
}

/// A pending second login step: the token goes to the client, only its hash is stored.
pub struct PendingMfa {
    pub token: SecretString,
    pub expires_at: Millis,
}

fn unix_secs() -> u64 {
    u64::try_from(now_millis() / 1000).unwrap_or(0)
}

fn step_i64(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

/// MFA flows.
#[derive(Clone)]
pub struct MfaService {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    /// Keys backup-code hashes, so a database dump alone cannot test guesses.
    secret_key: Arc<[u8]>,
    issuer: String,
    accounts: AccountService,
}

impl MfaService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        secret_key: Arc<[u8]>,
        issuer: String,
        accounts: AccountService,
    ) -> Self {
        MfaService {
            store,
            keys,
            secret_key,
            issuer,
            accounts,
        }
    }

    fn encrypt_secret(&self, tenant: TenantId, user: UserId, secret: &[u8]) -> Result<String> {
        let (t, u) = (tenant.to_string(), user.to_string());
        self.keys.encrypt(secret, &place(&t, &u))
    }

    fn decrypt_secret(
        &self,
        tenant: TenantId,
        user: UserId,
        stored: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let (t, u) = (tenant.to_string(), user.to_string());
        self.keys.decrypt(stored, &place(&t, &u))
    }

    /// Whether the user has a confirmed TOTP enrollment.
    pub async fn is_enabled(&self, tenant: TenantId, user: UserId) -> Result<bool> {
        let mut tx = self.store.read(tenant).await?;
        Ok(tx
            .totp_get(user)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    /// What the caller has enrolled.
    pub async fn status(&self, who: &Identity) -> Result<MfaStatus> {
        let mut tx = self.store.read(who.tenant_id).await?;
        let totp = tx.totp_get(who.user_id).await?;
        let codes = tx.backup_codes_list(who.user_id).await?;
        Ok(MfaStatus {
            totp_enabled: totp.as_ref().is_some_and(|t| t.confirmed_at.is_some()),
            totp_pending: totp.as_ref().is_some_and(|t| t.confirmed_at.is_none()),
            backup_codes_remaining: codes.iter().filter(|c| c.used_at.is_none()).count(),
        })
    }

    /// Starts (or restarts) a TOTP enrollment: a new secret, stored encrypted and not
    /// yet active. Refused while a confirmed enrollment exists.
    pub async fn enroll(&self, who: &Identity, meta: &RequestMeta) -> Result<Enrollment> {
        let secret: [u8; totp::SECRET_LEN] = crate::crypto::random_bytes()?;
        let sealed = self.encrypt_secret(who.tenant_id, who.user_id, &secret)?;
        let mut tx = self.store.write(who.tenant_id).await?;
        if tx
            .totp_get(who.user_id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some())
        {
            return Err(CoreError::Conflict(
                "TOTP is already enabled; disable it before enrolling again".into(),
            ));
        }
        tx.totp_put(who.user_id, &sealed, now_millis()).await?;
        let ev = audit::event(
            who.tenant_id,
            meta,
            Some(who.user_id),
            Action::MfaEnroll,
            user_resource(who.user_id),
            true,
            json!({"method": "totp", "state": "pending"}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        Ok(Enrollment {
            secret_base32: SecretString::from(totp::base32(&secret)),
            otpauth_uri: SecretString::from(totp::otpauth_uri(&secret, &self.issuer, &who.email)),
        })
    }

    /// Activates a pending enrollment with a valid code and issues the first backup
    /// codes (returned once, stored hashed).
    pub async fn confirm(
        &self,
        who: &Identity,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<Vec<String>> {
        let mut tx = self.store.write(who.tenant_id).await?;
        let pending = tx
            .totp_get(who.user_id)
            .await?
            .filter(|t| t.confirmed_at.is_none())
            .ok_or_else(|| {
                CoreError::Conflict("no pending TOTP enrollment: start one first".into())
            })?;
        let secret = self.decrypt_secret(who.tenant_id, who.user_id, &pending.secret_enc)?;
        let Some(step) = totp::verify(&secret, code, unix_secs(), None) else {
            return Err(CoreError::Invalid(
                "code: not a valid code for this secret".into(),
            ));
        };
        let now = now_millis();
        if !tx.totp_confirm(who.user_id, step_i64(step), now).await? {
            return Err(CoreError::Conflict(
                "enrollment changed; start again".into(),
            ));
        }
        let codes = self.replace_backup_codes(&mut tx, who.user_id, now).await?;
        let ev = audit::event(
            who.tenant_id,
            meta,
            Some(who.user_id),
            Action::MfaEnable,
            user_resource(who.user_id),
            true,
            json!({"method": "totp", "backup_codes": codes.len()}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Stores a new set of backup codes (hashed) in place of the old one, inside `tx`;
    /// returns the codes, to be shown once.
    async fn replace_backup_codes(
        &self,
        tx: &mut Box<dyn TenantTx>,
        user: UserId,
        now: Millis,
    ) -> Result<Vec<String>> {
        let codes = backup_codes::generate()?;
        let hashes: Vec<[u8; 32]> = codes
            .iter()
            .map(|c| backup_codes::hash(&self.secret_key, c))
            .collect();
        tx.backup_codes_replace(user, &hashes, now).await?;
        Ok(codes)
    }

    /// Checks a fresh TOTP code of a confirmed enrollment and consumes its step, inside
    /// `tx`. `Ok(false)` for a wrong or replayed code.
    async fn consume_totp(
        &self,
        tx: &mut Box<dyn TenantTx>,
        tenant: TenantId,
        user: UserId,
        code: &str,
    ) -> Result<bool> {
        let Some(record) = tx
            .totp_get(user)
            .await?
            .filter(|t| t.confirmed_at.is_some())
        else {
            return Ok(false);
        };
        let secret = self.decrypt_secret(tenant, user, &record.secret_enc)?;
        let last = record.last_used_step.and_then(|s| u64::try_from(s).ok());
        match totp::verify(&secret, code, unix_secs(), last) {
            Some(step) => tx.totp_use_step(user, step_i64(step)).await,
            None => Ok(false),
        }
    }

    /// Checks a backup code and marks it used, inside `tx`; returns the codes left.
    async fn consume_backup_code(
        &self,
        tx: &mut Box<dyn TenantTx>,
        user: UserId,
        code: &str,
    ) -> Result<Option<usize>> {
        let codes = tx.backup_codes_list(user).await?;
        let unused: Vec<_> = codes.iter().filter(|c| c.used_at.is_none()).collect();
        let hashes: Vec<[u8; 32]> = unused
            .iter()
            .map(|c| c.code_hash.as_slice().try_into().unwrap_or([0u8; 32]))
            .collect();
        let Some(i) = backup_codes::find(&self.secret_key, code, &hashes) else {
            return Ok(None);
        };
        if !tx.backup_code_use(unused[i].id, now_millis()).await? {
            return Ok(None);
        }
        Ok(Some(unused.len() - 1))
    }

    /// Turns TOTP off (and drops backup codes). Needs a fresh code or the password.
    pub async fn disable(
        &self,
        who: &Identity,
        code: Option<&str>,
        password: Option<&SecretString>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let reauth = self.reauthenticate(who, code, password).await?;
        let mut tx = self.store.write(who.tenant_id).await?;
        if let Reauth::Code(code) = &reauth
            && !self
                .consume_totp(&mut tx, who.tenant_id, who.user_id, code)
                .await?
        {
            return Err(CoreError::Forbidden("code: wrong or already used".into()));
        }
        if !tx.totp_delete(who.user_id).await? {
            return Err(CoreError::NotFound("TOTP enrollment"));
        }
        tx.backup_codes_delete(who.user_id).await?;
        let ev = audit::event(
            who.tenant_id,
            meta,
            Some(who.user_id),
            Action::MfaDisable,
            user_resource(who.user_id),
            true,
            json!({"method": "totp", "reauthenticated_with": reauth.name()}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await
    }

    /// Replaces the backup codes (old ones stop working). Needs a fresh TOTP code.
    pub async fn regenerate_backup_codes(
        &self,
        who: &Identity,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<Vec<String>> {
        let mut tx = self.store.write(who.tenant_id).await?;
        if !self
            .consume_totp(&mut tx, who.tenant_id, who.user_id, code)
            .await?
        {
            return Err(CoreError::Forbidden("code: wrong or already used".into()));
        }
        let codes = self
            .replace_backup_codes(&mut tx, who.user_id, now_millis())
            .await?;
        let ev = audit::event(
            who.tenant_id,
            meta,
            Some(who.user_id),
            Action::MfaBackupCodesRegenerate,
            user_resource(who.user_id),
            true,
            json!({"backup_codes": codes.len()}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        Ok(codes)
    }

    async fn reauthenticate<'a>(
        &self,
        who: &Identity,
        code: Option<&'a str>,
        password: Option<&SecretString>,
    ) -> Result<Reauth<'a>> {
        match (code, password) {
            (Some(code), None) => Ok(Reauth::Code(code)),
            (None, Some(password)) => {
                if self.accounts.verify_password_of(who, password).await? == Verified::No {
                    return Err(CoreError::Forbidden("password: wrong password".into()));
                }
                Ok(Reauth::Password)
            }
            _ => Err(CoreError::Invalid(
                "send either code (a current TOTP code) or password".into(),
            )),
        }
    }

    /// Completes a login whose password step created `token`'s challenge.
    pub async fn complete_login(
        &self,
        tenant: TenantId,
        token: &str,
        answer: SecondFactor<'_>,
        meta: &RequestMeta,
    ) -> Result<(User, NewSession)> {
        let hash = sha256(token.as_bytes());
        let now = now_millis();
        let mut tx = self.store.write(tenant).await?;
        let challenge = match tx.mfa_challenge_by_token_hash(&hash).await? {
            Some(c) if c.expires_at > now && c.attempts < CHALLENGE_MAX_ATTEMPTS => c,
            _ => return Err(CoreError::InvalidSecondFactor),
        };
        let user = tx
            .user_by_id(challenge.user_id)
            .await?
            .ok_or(CoreError::InvalidSecondFactor)?;
        let (ok, method, remaining) = match answer {
            SecondFactor::Totp(code) => (
                self.consume_totp(&mut tx, tenant, user.id, code).await?,
                "totp",
                None,
            ),
            SecondFactor::BackupCode(code) => {
                let left = self.consume_backup_code(&mut tx, user.id, code).await?;
                (left.is_some(), "backup_code", left)
            }
        };
        if !ok {
            tx.mfa_challenge_bump(challenge.id).await?;
            tx.commit().await?;
            // A known password with a wrong code is a failed login: audited, and counted
            // towards the lockout like a wrong password.
            let reason = match method {
                "totp" => "bad_totp_code",
                _ => "bad_backup_code",
            };
            self.accounts
                .record_failure(tenant, user.id, reason, meta)
                .await?;
            return Err(CoreError::InvalidSecondFactor);
        }
        tx.mfa_challenge_delete(challenge.id).await?;
        let new = new_session(self.accounts.session_policy(), &user, meta)?;
        let mut details = json!({"mfa": method});
        if let Some(left) = remaining {
            details["backup_codes_remaining"] = json!(left);
            let used = audit::event(
                tenant,
                meta,
                Some(user.id),
                Action::MfaBackupCodeUsed,
                user_resource(user.id),
                true,
                json!({"backup_codes_remaining": left}),
            );
            tx.append_audit(&used).await?;
        }
        record_sign_in(&mut *tx, &new, &user, meta, now, details).await?;
        tx.commit().await?;
        Ok((user, new))
    }
}

enum Reauth<'a> {
    Code(&'a str),
    Password,
}

impl Reauth<'_> {
    fn name(&self) -> &'static str {
        match self {
            Reauth::Code(_) => "totp",
            Reauth::Password => "password",
        }
    }
}

/// Where a TOTP secret lives: bound into its ciphertext so it cannot be moved.
pub fn place<'a>(tenant: &'a str, user: &'a str) -> Place<'a> {
    Place {
        tenant,
        table: "mfa_totp",
        column: "secret_enc",
        row: user,
    }
}

/// Creates a second-step challenge inside the password step's transaction.
pub async fn start_challenge(tx: &mut Box<dyn TenantTx>, user: UserId) -> Result<PendingMfa> {
    let token = random_token()?;
    let challenge = MfaChallenge {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        expires_at: now_millis() + CHALLENGE_TTL_MS,
        attempts: 0,
    };
    tx.mfa_challenge_insert(&challenge, &sha256(token.as_bytes()))
        .await?;
    Ok(PendingMfa {
        token: SecretString::from(token),
        expires_at: challenge.expires_at,
    })
}

/// Re-encrypts every TOTP secret of a tenant with the active key; returns how many rows
/// changed. Rows already on the active key are left alone.
pub async fn rotate_keys(store: &dyn Store, keys: &KeyRing, tenant: TenantId) -> Result<usize> {
    let mut tx = store.write(tenant).await?;
    let t = tenant.to_string();
    let mut changed = 0;
    for (user, sealed) in tx.totp_list().await? {
        if !keys.needs_rotation(&sealed) {
            continue;
        }
        let u = user.to_string();
        let secret = keys.decrypt(&sealed, &place(&t, &u))?;
        let resealed = keys.encrypt(&secret, &place(&t, &u))?;
        if tx.totp_rewrite(user, &sealed, &resealed).await? {
            changed += 1;
        }
    }
    tx.commit().await?;
    Ok(changed)
}

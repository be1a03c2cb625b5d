//! Session lifetime rules and session creation/authentication.

use std::sync::Arc;

use secrecy::SecretString;

use crate::audit::{self, Action};
use crate::clock::{Millis, now_millis};
use crate::crypto::{random_token, sha256};
use crate::ids::{SessionId, TenantId, UserId};
use crate::model::{AuthMethod, Identity, RequestMeta, Session, SessionView, User};
use crate::session_cache::{Invalidation, SessionCache};
use crate::store::{Store, TenantTx};
use crate::{CoreError, Result};

/// Longest user agent string stored with a session.
const MAX_USER_AGENT: usize = 512;

/// Session lifetime settings.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    /// Absolute lifetime from creation.
    pub absolute_lifetime_ms: Millis,
    /// A session unused for this long is dead.
    pub idle_timeout_ms: Millis,
    /// `last_seen_at` is written at most this often, not on every request.
    pub activity_update_interval_ms: Millis,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            absolute_lifetime_ms: 8 * 3600 * 1000,
            idle_timeout_ms: 30 * 60 * 1000,
            activity_update_interval_ms: 60 * 1000,
        }
    }
}

impl SessionPolicy {
    /// Whether a session is still valid at `now`.
    pub fn is_live(&self, s: &Session, now: Millis) -> bool {
        self.live_at(s.expires_at, s.last_seen_at, now)
    }

    /// Whether a session expiring at `expires_at` and last active at `last_seen_at` is
    /// still valid at `now` (for a session row or a cached one).
    pub fn live_at(&self, expires_at: Millis, last_seen_at: Millis, now: Millis) -> bool {
        now < expires_at && now - last_seen_at < self.idle_timeout_ms
    }
}

/// A freshly created session and the only copy of its token.
pub struct NewSession {
    pub session: Session,
    /// The bearer secret for the cookie. Never stored, never logged.
    pub token: SecretString,
}

/// Creates a password-login session record for `user` (caller inserts it in its
/// transaction).
pub fn new_session(policy: &SessionPolicy, user: &User, meta: &RequestMeta) -> Result<NewSession> {
    new_session_with(policy, user, meta, AuthMethod::Password, Vec::new())
}

/// Creates a session record authenticated by `method`, carrying `extra_roles` on top of
/// the user's own role.
pub fn new_session_with(
    policy: &SessionPolicy,
    user: &User,
    meta: &RequestMeta,
    auth_method: AuthMethod,
    extra_roles: Vec<String>,
) -> Result<NewSession> {
    let token = random_token()?;
    let now = now_millis();
    let session = Session {
        id: SessionId::new(),
        tenant_id: user.tenant_id,
        user_id: user.id,
        token_hash: sha256(token.as_bytes()).to_vec(),
        created_at: now,
        expires_at: now + policy.absolute_lifetime_ms,
        last_seen_at: now,
        ip: meta.ip.clone(),
        user_agent: meta
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
        auth_method,
        extra_roles,
    };
    Ok(NewSession {
        session,
        token: SecretString::from(token),
    })
}

/// Writes a completed sign-in inside `tx`: the user's last-login facts, the session,
/// and the `login.success` audit entry, whose `details` get the session id. Password,
/// second-factor and provider sign-ins all end here, so they leave the same records.
pub async fn record_sign_in(
    tx: &mut dyn TenantTx,
    new: &NewSession,
    user: &User,
    meta: &RequestMeta,
    now: Millis,
    mut details: serde_json::Value,
) -> Result<()> {
    tx.record_login_success(user.id, now, meta.ip.as_deref())
        .await?;
    tx.insert_session(&new.session).await?;
    details["session_id"] = serde_json::json!(new.session.id);
    let ev = audit::event(
        user.tenant_id,
        meta,
        Some(user.id),
        Action::LoginSuccess,
        user_resource(user.id),
        true,
        details,
    );
    tx.append_audit(&ev).await
}

/// Session operations that are not part of login.
#[derive(Clone)]
pub struct SessionService {
    store: Arc<dyn Store>,
    policy: SessionPolicy,
    cache: Arc<SessionCache>,
}

impl SessionService {
    pub fn new(store: Arc<dyn Store>, policy: SessionPolicy, cache: Arc<SessionCache>) -> Self {
        SessionService {
            store,
            policy,
            cache,
        }
    }

    /// The configured policy.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// The cache of validated sessions (for invalidations from other instances).
    pub fn cache(&self) -> &Arc<SessionCache> {
        &self.cache
    }

    /// Resolves a session token to an identity at `now` (when the request arrived),
    /// refreshing last activity when due. A warm session is answered from the cache: no
    /// query, and no write until the activity update interval has passed.
    pub async fn authenticate(
        &self,
        tenant: TenantId,
        token: &str,
        now: Millis,
    ) -> Result<Arc<Identity>> {
        // Tokens are 43 characters; anything else cannot match and costs no query.
        if token.len() != 43 {
            return Err(CoreError::Unauthenticated);
        }
        let hash = sha256(token.as_bytes());
        if let Some(hit) = self.cache.get(tenant, &hash, now) {
            self.check_live(hit.identity.session_expires_at, hit.last_seen_at, now)?;
            if self.touch_due(hit.last_seen_at, now)
                && self.cache.claim_touch(&hash, hit.last_seen_at, now)
            {
                self.touch(tenant, hit.identity.session_id, now).await?;
            }
            return Ok(hit.identity);
        }
        let epoch = self.cache.epoch();
        let mut tx = self.store.read(tenant).await?;
        let found = tx.session_by_token_hash(&hash).await?;
        drop(tx);
        let (session, user) = found.ok_or(CoreError::Unauthenticated)?;
        self.check_live(session.expires_at, session.last_seen_at, now)?;
        let mut last_seen = session.last_seen_at;
        if self.touch_due(last_seen, now) {
            self.touch(tenant, session.id, now).await?;
            last_seen = now;
        }
        let mut roles = vec![user.role.as_str().to_string()];
        for extra in session.extra_roles {
            if !roles.contains(&extra) {
                roles.push(extra);
            }
        }
        let identity = Arc::new(Identity {
            user_id: user.id,
            tenant_id: tenant,
            email: user.email,
            roles,
            session_id: session.id,
            session_expires_at: session.expires_at,
            auth_method: session.auth_method,
            rendered: Default::default(),
        });
        self.cache
            .insert(hash, identity.clone(), last_seen, now, epoch);
        Ok(identity)
    }

    /// Refuses a session past its absolute lifetime or idle for too long.
    fn check_live(&self, expires_at: Millis, last_seen_at: Millis, now: Millis) -> Result<()> {
        if self.policy.live_at(expires_at, last_seen_at, now) {
            return Ok(());
        }
        let why = if now >= expires_at {
            "absolute"
        } else {
            "idle"
        };
        metrics::counter!("aegis_session_timeouts_total", "kind" => why).increment(1);
        Err(CoreError::Unauthenticated)
    }

    fn touch_due(&self, last_seen_at: Millis, now: Millis) -> bool {
        now - last_seen_at >= self.policy.activity_update_interval_ms
    }

    async fn touch(&self, tenant: TenantId, id: SessionId, now: Millis) -> Result<()> {
        let mut tx = self.store.write(tenant).await?;
        tx.touch_session(id, now).await?;
        tx.commit().await
    }

    /// Ends the current session (logout).
    pub async fn logout(&self, who: &Identity, meta: &RequestMeta) -> Result<()> {
        let mut tx = self.store.write(who.tenant_id).await?;
        tx.delete_session(who.user_id, who.session_id).await?;
        let ev = audit::event(
            who.tenant_id,
            meta,
            Some(who.user_id),
            Action::Logout,
            format!("session:{}", who.session_id),
            true,
            serde_json::json!({}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        self.cache.invalidate(Invalidation::Session(who.session_id));
        Ok(())
    }

    /// The caller's live sessions, newest first.
    pub async fn list(&self, who: &Identity) -> Result<Vec<SessionView>> {
        let mut tx = self.store.read(who.tenant_id).await?;
        let sessions = tx.list_user_sessions(who.user_id).await?;
        let now = now_millis();
        Ok(sessions
            .into_iter()
            .filter(|s| self.policy.is_live(s, now))
            .map(|s| SessionView {
                current: s.id == who.session_id,
                id: s.id,
                created_at: s.created_at,
                expires_at: s.expires_at,
                last_activity_at: s.last_seen_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect())
    }

    /// Revokes one of the caller's sessions.
    pub async fn revoke(&self, who: &Identity, id: SessionId, meta: &RequestMeta) -> Result<()> {
        let mut tx = self.store.write(who.tenant_id).await?;
        if !tx.delete_session(who.user_id, id).await? {
            return Err(CoreError::NotFound("session"));
        }
        append_revoke(
            &mut *tx,
            who,
            meta,
            serde_json::json!({"session_id": id}),
            1,
        )
        .await?;
        tx.commit().await?;
        self.cache.invalidate(Invalidation::Session(id));
        Ok(())
    }

    /// Revokes every session of the caller except the current one; returns how many.
    pub async fn revoke_others(&self, who: &Identity, meta: &RequestMeta) -> Result<u64> {
        let mut tx = self.store.write(who.tenant_id).await?;
        let n = tx
            .delete_user_sessions(who.user_id, Some(who.session_id))
            .await?;
        append_revoke(
            &mut *tx,
            who,
            meta,
            serde_json::json!({"scope": "others"}),
            n,
        )
        .await?;
        tx.commit().await?;
        // The current session is dropped from the cache too and simply re-read.
        self.cache.invalidate(Invalidation::User(who.user_id));
        Ok(n)
    }

    /// Deletes expired and idle sessions (and expired MFA login challenges and
    /// provider sign-in flows) of one tenant.
    pub async fn purge(&self, tenant: TenantId) -> Result<u64> {
        let now = now_millis();
        let mut tx = self.store.write(tenant).await?;
        let n = tx
            .purge_sessions(now, now - self.policy.idle_timeout_ms)
            .await?;
        // Expired second-step login challenges go with them.
        let n = n + tx.mfa_challenge_purge(now).await?;
        // And sign-ins with a provider that were started but never completed.
        let n = n + tx.oidc_state_purge(now).await?;
        tx.commit().await?;
        Ok(n)
    }
}

async fn append_revoke(
    tx: &mut dyn TenantTx,
    who: &Identity,
    meta: &RequestMeta,
    mut details: serde_json::Value,
    count: u64,
) -> Result<()> {
    details["revoked"] = serde_json::json!(count);
    let ev = audit::event(
        who.tenant_id,
        meta,
        Some(who.user_id),
        Action::SessionRevoke,
        format!("user:{}", who.user_id),
        true,
        details,
    );
    tx.append_audit(&ev).await
}

/// Used by account flows: the id of a user for audit resources.
pub fn user_resource(id: UserId) -> String {
    format!("user:{id}")
}

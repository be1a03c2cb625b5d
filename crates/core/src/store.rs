//! Storage traits. A [`TenantTx`] is a transaction bound to exactly one tenant: every query
//! it runs is filtered by that tenant (and, on PostgreSQL, also by row-level security), so
//! calling code cannot forget the tenant filter.

use async_trait::async_trait;

use crate::Result;
use crate::clock::Millis;
use crate::ids::{SessionId, TenantId, UserId};
use crate::model::{
    AuditEvent, AuditQuery, BackupCodeRecord, HashAlgorithm, MfaChallenge, MfaPolicy, Session,
    Tenant, TotpRecord, User,
};
use crate::oidc::{OidcLink, OidcLoginState, OidcProvider};

/// The entry point of a storage backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;
    /// The tenant registry is global (it is how a request finds its tenant).
    async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>>;
    /// Looks a tenant up by its configured host name.
    async fn tenant_by_host(&self, host: &str) -> Result<Option<Tenant>>;
    /// All tenants, oldest first.
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    /// Inserts a tenant outside any tenant context (bootstrap of the default tenant).
    async fn bootstrap_tenant(&self, tenant: &Tenant) -> Result<()>;
    /// Starts a read-write transaction in `tenant`'s context.
    async fn write(&self, tenant: TenantId) -> Result<Box<dyn TenantTx>>;
    /// Starts a read-only unit of work in `tenant`'s context.
    async fn read(&self, tenant: TenantId) -> Result<Box<dyn TenantTx>>;
}

/// A transaction scoped to one tenant. Dropping it without `commit` rolls back.
#[async_trait]
pub trait TenantTx: Send {
    /// The tenant every statement of this transaction is bound to.
    fn tenant(&self) -> TenantId;
    /// Makes the transaction's writes durable.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Registers a new tenant (the registry is not tenant-scoped).
    async fn insert_tenant(&mut self, tenant: &Tenant) -> Result<()>;
    /// Enables or disables a tenant; false when no such tenant.
    async fn set_tenant_disabled(&mut self, slug: &str, disabled: bool) -> Result<bool>;
    /// Sets whether this transaction's tenant requires verified e-mail addresses.
    async fn set_tenant_email_policy(&mut self, require_verified: bool) -> Result<()>;
    /// Marks the address verified; false if it already was.
    async fn mark_email_verified(&mut self, user: UserId, now: Millis) -> Result<bool>;
    /// Sets the MFA policy of this transaction's tenant.
    async fn set_tenant_mfa_policy(&mut self, policy: MfaPolicy) -> Result<()>;

    async fn insert_user(&mut self, user: &User) -> Result<()>;
    async fn user_by_email(&mut self, email: &str) -> Result<Option<User>>;
    async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>>;
    async fn list_users(&mut self, limit: i64, offset: i64) -> Result<Vec<User>>;
    async fn update_password(
        &mut self,
        id: UserId,
        hash: &str,
        algorithm: HashAlgorithm,
        now: Millis,
    ) -> Result<()>;
    async fn update_login_failures(
        &mut self,
        id: UserId,
        failed_attempts: i32,
        locked_until: Option<Millis>,
        now: Millis,
    ) -> Result<()>;
    async fn record_login_success(
        &mut self,
        id: UserId,
        now: Millis,
        ip: Option<&str>,
    ) -> Result<()>;

    async fn insert_session(&mut self, session: &Session) -> Result<()>;
    /// The session with this token hash, with its user.
    async fn session_by_token_hash(&mut self, hash: &[u8]) -> Result<Option<(Session, User)>>;
    async fn touch_session(&mut self, id: SessionId, now: Millis) -> Result<()>;
    /// Deletes one session of one user; false when it did not exist.
    async fn delete_session(&mut self, user: UserId, id: SessionId) -> Result<bool>;
    /// Deletes all of a user's sessions except `keep`.
    async fn delete_user_sessions(&mut self, user: UserId, keep: Option<SessionId>) -> Result<u64>;
    async fn list_user_sessions(&mut self, user: UserId) -> Result<Vec<Session>>;
    /// Deletes sessions past their absolute expiry or idle since before `idle_cutoff`.
    async fn purge_sessions(&mut self, now: Millis, idle_cutoff: Millis) -> Result<u64>;

    async fn append_audit(&mut self, event: &AuditEvent) -> Result<()>;
    async fn query_audit(&mut self, query: &AuditQuery) -> Result<Vec<AuditEvent>>;

    async fn totp_get(&mut self, user: UserId) -> Result<Option<TotpRecord>>;
    /// Stores a pending (unconfirmed) enrollment, replacing a pending one; a confirmed
    /// enrollment is left untouched.
    async fn totp_put(&mut self, user: UserId, secret_enc: &str, now: Millis) -> Result<()>;
    /// Confirms a pending enrollment with the step of its first code; false if none.
    async fn totp_confirm(&mut self, user: UserId, step: i64, now: Millis) -> Result<bool>;
    /// Records `step` as used if it is later than the last used one; false means the
    /// step was already used (a replay) or there is no confirmed enrollment.
    async fn totp_use_step(&mut self, user: UserId, step: i64) -> Result<bool>;
    async fn totp_delete(&mut self, user: UserId) -> Result<bool>;
    /// Every enrollment of the tenant: (user, encrypted secret), for key rotation.
    async fn totp_list(&mut self) -> Result<Vec<(UserId, String)>>;
    /// Replaces `old` by `new` (re-encryption); false if the row changed meanwhile.
    async fn totp_rewrite(&mut self, user: UserId, old: &str, new: &str) -> Result<bool>;

    /// Replaces the user's backup codes with these hashes.
    async fn backup_codes_replace(
        &mut self,
        user: UserId,
        hashes: &[[u8; 32]],
        now: Millis,
    ) -> Result<()>;
    async fn backup_codes_list(&mut self, user: UserId) -> Result<Vec<BackupCodeRecord>>;
    async fn backup_codes_delete(&mut self, user: UserId) -> Result<()>;
    /// Marks a code used; false if it was already used.
    async fn backup_code_use(&mut self, id: uuid::Uuid, now: Millis) -> Result<bool>;

    async fn mfa_challenge_insert(
        &mut self,
        challenge: &MfaChallenge,
        token_hash: &[u8],
    ) -> Result<()>;
    async fn mfa_challenge_by_token_hash(&mut self, hash: &[u8]) -> Result<Option<MfaChallenge>>;
    async fn mfa_challenge_delete(&mut self, id: uuid::Uuid) -> Result<()>;
    async fn mfa_challenge_bump(&mut self, id: uuid::Uuid) -> Result<()>;
    async fn mfa_challenge_purge(&mut self, now: Millis) -> Result<u64>;

    /// Stores an e-mailed token's hash, after removing the user's earlier tokens of the
    /// same purpose (a new token kills the old ones).
    async fn email_token_replace(
        &mut self,
        user: UserId,
        purpose: &str,
        token_hash: &[u8],
        expires_at: Millis,
        now: Millis,
    ) -> Result<()>;
    /// Consumes a live token (deleted: single use); returns its user.
    async fn email_token_take(
        &mut self,
        purpose: &str,
        token_hash: &[u8],
        now: Millis,
    ) -> Result<Option<UserId>>;

    /// The tenant's upstream OpenID Connect provider of this name.
    async fn oidc_provider_by_name(&mut self, name: &str) -> Result<Option<OidcProvider>>;
    /// Every provider of the tenant, by name.
    async fn oidc_provider_list(&mut self) -> Result<Vec<OidcProvider>>;
    /// Conflict when the name is taken.
    async fn oidc_provider_insert(&mut self, provider: &OidcProvider) -> Result<()>;
    /// Replaces settings, secrets and `updated_at` of the provider with this id; false
    /// if it does not exist.
    async fn oidc_provider_update(&mut self, provider: &OidcProvider) -> Result<bool>;
    /// Deletes a provider with its links and pending sign-ins; false if none.
    async fn oidc_provider_delete(&mut self, name: &str) -> Result<bool>;

    async fn oidc_state_insert(&mut self, state: &OidcLoginState) -> Result<()>;
    /// Removes and returns the pending sign-in with this state hash, expired or not
    /// (single use: a second call finds nothing).
    async fn oidc_state_take(&mut self, state_hash: &[u8]) -> Result<Option<OidcLoginState>>;
    /// Deletes pending sign-ins that expired before `now`.
    async fn oidc_state_purge(&mut self, now: Millis) -> Result<u64>;

    async fn oidc_link_by_subject(
        &mut self,
        provider_id: uuid::Uuid,
        subject: &str,
    ) -> Result<Option<OidcLink>>;
    /// Conflict when `(provider, subject)` is already linked.
    async fn oidc_link_insert(&mut self, link: &OidcLink) -> Result<()>;
    /// Records a sign-in through the link; a `Some` refresh token replaces the stored
    /// one, `None` keeps it.
    async fn oidc_link_login(
        &mut self,
        id: uuid::Uuid,
        now: Millis,
        refresh_token_enc: Option<&str>,
    ) -> Result<()>;
    /// A user's links, oldest first.
    async fn oidc_links_for_user(&mut self, user: UserId) -> Result<Vec<OidcLink>>;
    /// Every stored refresh token of the tenant: (link id, ciphertext), for key rotation.
    async fn oidc_refresh_tokens(&mut self) -> Result<Vec<(uuid::Uuid, String)>>;
    /// Replaces refresh token `old` by `new` (re-encryption); false if it changed meanwhile.
    async fn oidc_refresh_token_rewrite(
        &mut self,
        id: uuid::Uuid,
        old: &str,
        new: &str,
    ) -> Result<bool>;
}

//! The query code shared by both backends. The Rust is the same; the SQL text comes from
//! `sql/<backend>/<name>.sql`, chosen by the `$dir` literal of the macro.

/// Includes `sql/<dir>/<name>.sql` as a `&'static str`.
macro_rules! sql {
    ($dir:literal, $name:literal) => {
        include_str!(concat!("../sql/", $dir, "/", $name, ".sql"))
    };
}
pub(crate) use sql;

/// Implements row decoding, the tenant registry queries and `TenantTx` for one backend.
/// `$tx` must have fields `tx: sqlx::Transaction<'static, $db>` and `tenant: TenantId`;
/// `$db` must be a path that resolves from any module (`sqlx::Sqlite`), because the row
/// decoders and OIDC queries expand into child modules.
macro_rules! impl_backend {
    ($store:ident, $tx:ident, $db:ty, $dir:literal) => {
        use aegis_core::clock::Millis;
        use aegis_core::ids::{SessionId, TenantId, UserId};
        use aegis_core::model::{
            AuditEvent, AuditQuery, BackupCodeRecord, HashAlgorithm, MfaChallenge, MfaPolicy,
            Session, Tenant, TotpRecord, User,
        };
        use aegis_core::oidc::{OidcLink, OidcLoginState, OidcProvider};
        use aegis_core::store::TenantTx;
        use aegis_core::{CoreError, Result};
        use sqlx::Row;
        use $crate::common::sql;
        use $crate::db_err;

        $crate::rows::impl_rows!($db);
        use rows::{
            audit_from_row, extra_roles_column, session_from_row, tenant_from_row, user_from_row,
        };
        $crate::oidc::impl_oidc!($tx, $db, $dir);

        impl $store {
            async fn registry_one(&self, query: &'static str, key: &str) -> Result<Option<Tenant>> {
                sqlx::query(query)
                    .bind(key.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?
                    .as_ref()
                    .map(tenant_from_row)
                    .transpose()
            }

            async fn registry_by_slug(&self, slug: &str) -> Result<Option<Tenant>> {
                self.registry_one(sql!($dir, "tenant_by_slug"), slug).await
            }

            async fn registry_by_host(&self, host: &str) -> Result<Option<Tenant>> {
                self.registry_one(sql!($dir, "tenant_by_host"), host).await
            }

            async fn registry_list(&self) -> Result<Vec<Tenant>> {
                sqlx::query(sql!($dir, "tenant_list"))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?
                    .iter()
                    .map(tenant_from_row)
                    .collect()
            }

            async fn registry_bootstrap(&self, t: &Tenant) -> Result<()> {
                sqlx::query(sql!($dir, "tenant_bootstrap"))
                    .bind(t.id.0)
                    .bind(t.slug.clone())
                    .bind(t.name.clone())
                    .bind(t.host.clone())
                    .bind(t.disabled)
                    .bind(t.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl TenantTx for $tx {
            fn tenant(&self) -> TenantId {
                self.tenant
            }

            async fn commit(self: Box<Self>) -> Result<()> {
                self.tx.commit().await.map_err(db_err)
            }

            async fn insert_tenant(&mut self, t: &Tenant) -> Result<()> {
                sqlx::query(sql!($dir, "tenant_insert"))
                    .bind(t.id.0)
                    .bind(t.slug.clone())
                    .bind(t.name.clone())
                    .bind(t.host.clone())
                    .bind(t.disabled)
                    .bind(t.created_at)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(|e| match db_err(e) {
                        CoreError::Conflict(_) => CoreError::Conflict(
                            "slug: a tenant with this slug or host already exists".into(),
                        ),
                        other => other,
                    })?;
                Ok(())
            }

            async fn set_tenant_email_policy(&mut self, require_verified: bool) -> Result<()> {
                sqlx::query(sql!($dir, "tenant_set_email_policy"))
                    .bind(self.tenant.0)
                    .bind(require_verified)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn mark_email_verified(&mut self, user: UserId, now: Millis) -> Result<bool> {
                let r = sqlx::query(sql!($dir, "user_mark_verified"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_tenant_mfa_policy(&mut self, policy: MfaPolicy) -> Result<()> {
                sqlx::query(sql!($dir, "tenant_set_mfa_policy"))
                    .bind(self.tenant.0)
                    .bind(policy.as_str())
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn set_tenant_disabled(&mut self, slug: &str, disabled: bool) -> Result<bool> {
                let r = sqlx::query(sql!($dir, "tenant_set_disabled"))
                    .bind(slug.to_string())
                    .bind(disabled)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() > 0)
            }

            async fn insert_user(&mut self, u: &User) -> Result<()> {
                sqlx::query(sql!($dir, "user_insert"))
                    .bind(self.tenant.0)
                    .bind(u.id.0)
                    .bind(u.email.clone())
                    .bind(u.password_hash.clone())
                    .bind(u.password_algorithm.as_str())
                    .bind(u.role.as_str())
                    .bind(u.failed_attempts)
                    .bind(u.locked_until)
                    .bind(u.last_login_at)
                    .bind(u.last_login_ip.clone())
                    .bind(u.created_at)
                    .bind(u.updated_at)
                    .bind(u.email_verified_at)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(|e| match db_err(e) {
                        CoreError::Conflict(_) => CoreError::Conflict(
                            "email: an account with this address already exists".into(),
                        ),
                        other => other,
                    })?;
                Ok(())
            }

            async fn user_by_email(&mut self, email: &str) -> Result<Option<User>> {
                sqlx::query(sql!($dir, "user_by_email"))
                    .bind(self.tenant.0)
                    .bind(email.to_string())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(db_err)?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            }

            async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>> {
                sqlx::query(sql!($dir, "user_by_id"))
                    .bind(self.tenant.0)
                    .bind(id.0)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(db_err)?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            }

            async fn list_users(&mut self, limit: i64, offset: i64) -> Result<Vec<User>> {
                sqlx::query(sql!($dir, "user_list"))
                    .bind(self.tenant.0)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(db_err)?
                    .iter()
                    .map(user_from_row)
                    .collect()
            }

            async fn update_password(
                &mut self,
                id: UserId,
                hash: &str,
                algorithm: HashAlgorithm,
                now: Millis,
            ) -> Result<()> {
                sqlx::query(sql!($dir, "user_update_password"))
                    .bind(self.tenant.0)
                    .bind(id.0)
                    .bind(hash.to_string())
                    .bind(algorithm.as_str())
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn update_login_failures(
                &mut self,
                id: UserId,
                failed_attempts: i32,
                locked_until: Option<Millis>,
                now: Millis,
            ) -> Result<()> {
                sqlx::query(sql!($dir, "user_update_failures"))
                    .bind(self.tenant.0)
                    .bind(id.0)
                    .bind(failed_attempts)
                    .bind(locked_until)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn record_login_success(
                &mut self,
                id: UserId,
                now: Millis,
                ip: Option<&str>,
            ) -> Result<()> {
                sqlx::query(sql!($dir, "user_login_success"))
                    .bind(self.tenant.0)
                    .bind(id.0)
                    .bind(now)
                    .bind(ip.map(str::to_string))
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn insert_session(&mut self, s: &Session) -> Result<()> {
                sqlx::query(sql!($dir, "session_insert"))
                    .bind(self.tenant.0)
                    .bind(s.id.0)
                    .bind(s.user_id.0)
                    .bind(s.token_hash.clone())
                    .bind(s.created_at)
                    .bind(s.expires_at)
                    .bind(s.last_seen_at)
                    .bind(s.ip.clone())
                    .bind(s.user_agent.clone())
                    .bind(s.auth_method.as_str())
                    .bind(extra_roles_column(&s.extra_roles)?)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn session_by_token_hash(
                &mut self,
                hash: &[u8],
            ) -> Result<Option<(Session, User)>> {
                let row = sqlx::query(sql!($dir, "session_by_token_hash"))
                    .bind(self.tenant.0)
                    .bind(hash.to_vec())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                match row {
                    None => Ok(None),
                    Some(r) => Ok(Some((
                        session_from_row(&r, self.tenant)?,
                        user_from_row(&r)?,
                    ))),
                }
            }

            async fn touch_session(&mut self, id: SessionId, now: Millis) -> Result<()> {
                sqlx::query(sql!($dir, "session_touch"))
                    .bind(self.tenant.0)
                    .bind(id.0)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn delete_session(&mut self, user: UserId, id: SessionId) -> Result<bool> {
                let r = sqlx::query(sql!($dir, "session_delete"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .bind(id.0)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() > 0)
            }

            async fn delete_user_sessions(
                &mut self,
                user: UserId,
                keep: Option<SessionId>,
            ) -> Result<u64> {
                let r = sqlx::query(sql!($dir, "session_delete_for_user"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .bind(keep.map(|k| k.0))
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected())
            }

            async fn list_user_sessions(&mut self, user: UserId) -> Result<Vec<Session>> {
                let tenant = self.tenant;
                sqlx::query(sql!($dir, "session_list_for_user"))
                    .bind(tenant.0)
                    .bind(user.0)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(db_err)?
                    .iter()
                    .map(|r| session_from_row(r, tenant))
                    .collect()
            }

            async fn purge_sessions(&mut self, now: Millis, idle_cutoff: Millis) -> Result<u64> {
                let r = sqlx::query(sql!($dir, "session_purge"))
                    .bind(self.tenant.0)
                    .bind(now)
                    .bind(idle_cutoff)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected())
            }

            async fn append_audit(&mut self, e: &AuditEvent) -> Result<()> {
                sqlx::query(sql!($dir, "audit_insert"))
                    .bind(self.tenant.0)
                    .bind(e.id.0)
                    .bind(e.occurred_at)
                    .bind(e.request_id.clone())
                    .bind(e.actor_id.map(|a| a.0))
                    .bind(e.actor_kind.clone())
                    .bind(e.action.clone())
                    .bind(e.resource.clone())
                    .bind(e.outcome.clone())
                    .bind(e.ip.clone())
                    .bind(e.user_agent.clone())
                    .bind(e.details.to_string())
                    .bind(e.risk_score)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn query_audit(&mut self, q: &AuditQuery) -> Result<Vec<AuditEvent>> {
                sqlx::query(sql!($dir, "audit_query"))
                    .bind(self.tenant.0)
                    .bind(q.actor_id.map(|a| a.0))
                    .bind(q.action.clone())
                    .bind(q.since)
                    .bind(q.until)
                    .bind(q.before.map(|b| b.0))
                    .bind(q.limit)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(db_err)?
                    .iter()
                    .map(audit_from_row)
                    .collect()
            }

            async fn totp_get(&mut self, user: UserId) -> Result<Option<TotpRecord>> {
                let row = sqlx::query(sql!($dir, "totp_get"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                row.map(|r| {
                    Ok(TotpRecord {
                        secret_enc: r.try_get("secret_enc").map_err(db_err)?,
                        confirmed_at: r.try_get("confirmed_at").map_err(db_err)?,
                        last_used_step: r.try_get("last_used_step").map_err(db_err)?,
                    })
                })
                .transpose()
            }

            async fn totp_put(
                &mut self,
                user: UserId,
                secret_enc: &str,
                now: Millis,
            ) -> Result<()> {
                sqlx::query(sql!($dir, "totp_put"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .bind(secret_enc.to_string())
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn totp_confirm(&mut self, user: UserId, step: i64, now: Millis) -> Result<bool> {
                let r = sqlx::query(sql!($dir, "totp_confirm"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .bind(now)
                    .bind(step)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn totp_use_step(&mut self, user: UserId, step: i64) -> Result<bool> {
                let r = sqlx::query(sql!($dir, "totp_use_step"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .bind(step)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn totp_delete(&mut self, user: UserId) -> Result<bool> {
                let r = sqlx::query(sql!($dir, "totp_delete"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn totp_list(&mut self) -> Result<Vec<(UserId, String)>> {
                sqlx::query(sql!($dir, "totp_list"))
                    .bind(self.tenant.0)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(db_err)?
                    .iter()
                    .map(|r| {
                        Ok((
                            UserId(r.try_get("user_id").map_err(db_err)?),
                            r.try_get("secret_enc").map_err(db_err)?,
                        ))
                    })
                    .collect()
            }

            async fn totp_rewrite(&mut self, user: UserId, old: &str, new: &str) -> Result<bool> {
                let r = sqlx::query(sql!($dir, "totp_rewrite"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .bind(new.to_string())
                    .bind(old.to_string())
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn backup_codes_replace(
                &mut self,
                user: UserId,
                hashes: &[[u8; 32]],
                now: Millis,
            ) -> Result<()> {
                self.backup_codes_delete(user).await?;
                for h in hashes {
                    sqlx::query(sql!($dir, "backup_code_insert"))
                        .bind(self.tenant.0)
                        .bind(uuid::Uuid::now_v7())
                        .bind(user.0)
                        .bind(h.to_vec())
                        .bind(now)
                        .execute(&mut *self.tx)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            async fn backup_codes_list(&mut self, user: UserId) -> Result<Vec<BackupCodeRecord>> {
                sqlx::query(sql!($dir, "backup_codes_list"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(db_err)?
                    .iter()
                    .map(|r| {
                        Ok(BackupCodeRecord {
                            id: r.try_get("id").map_err(db_err)?,
                            code_hash: r.try_get("code_hash").map_err(db_err)?,
                            used_at: r.try_get("used_at").map_err(db_err)?,
                        })
                    })
                    .collect()
            }

            async fn backup_codes_delete(&mut self, user: UserId) -> Result<()> {
                sqlx::query(sql!($dir, "backup_codes_delete"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn backup_code_use(&mut self, id: uuid::Uuid, now: Millis) -> Result<bool> {
                let r = sqlx::query(sql!($dir, "backup_code_use"))
                    .bind(self.tenant.0)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn mfa_challenge_insert(
                &mut self,
                c: &MfaChallenge,
                token_hash: &[u8],
            ) -> Result<()> {
                sqlx::query(sql!($dir, "mfa_challenge_insert"))
                    .bind(self.tenant.0)
                    .bind(c.id)
                    .bind(c.user_id.0)
                    .bind(token_hash.to_vec())
                    .bind(c.expires_at)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn mfa_challenge_by_token_hash(
                &mut self,
                hash: &[u8],
            ) -> Result<Option<MfaChallenge>> {
                let row = sqlx::query(sql!($dir, "mfa_challenge_by_token_hash"))
                    .bind(self.tenant.0)
                    .bind(hash.to_vec())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                row.map(|r| {
                    Ok(MfaChallenge {
                        id: r.try_get("id").map_err(db_err)?,
                        user_id: UserId(r.try_get("user_id").map_err(db_err)?),
                        expires_at: r.try_get("expires_at").map_err(db_err)?,
                        attempts: r.try_get("attempts").map_err(db_err)?,
                    })
                })
                .transpose()
            }

            async fn mfa_challenge_delete(&mut self, id: uuid::Uuid) -> Result<()> {
                sqlx::query(sql!($dir, "mfa_challenge_delete"))
                    .bind(self.tenant.0)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn mfa_challenge_bump(&mut self, id: uuid::Uuid) -> Result<()> {
                sqlx::query(sql!($dir, "mfa_challenge_bump"))
                    .bind(self.tenant.0)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn email_token_replace(
                &mut self,
                user: UserId,
                purpose: &str,
                token_hash: &[u8],
                expires_at: Millis,
                now: Millis,
            ) -> Result<()> {
                sqlx::query(sql!($dir, "email_tokens_delete_for_user"))
                    .bind(self.tenant.0)
                    .bind(user.0)
                    .bind(purpose.to_string())
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                sqlx::query(sql!($dir, "email_token_insert"))
                    .bind(self.tenant.0)
                    .bind(uuid::Uuid::now_v7())
                    .bind(user.0)
                    .bind(purpose.to_string())
                    .bind(token_hash.to_vec())
                    .bind(expires_at)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn email_token_take(
                &mut self,
                purpose: &str,
                token_hash: &[u8],
                now: Millis,
            ) -> Result<Option<UserId>> {
                let row = sqlx::query(sql!($dir, "email_token_take"))
                    .bind(self.tenant.0)
                    .bind(purpose.to_string())
                    .bind(token_hash.to_vec())
                    .bind(now)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                row.map(|r| Ok(UserId(r.try_get("user_id").map_err(db_err)?)))
                    .transpose()
            }

            async fn mfa_challenge_purge(&mut self, now: Millis) -> Result<u64> {
                let r = sqlx::query(sql!($dir, "mfa_challenge_purge"))
                    .bind(self.tenant.0)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected())
            }

            async fn oidc_provider_by_name(&mut self, name: &str) -> Result<Option<OidcProvider>> {
                self.oidc().provider_by_name(name).await
            }

            async fn oidc_provider_list(&mut self) -> Result<Vec<OidcProvider>> {
                self.oidc().provider_list().await
            }

            async fn oidc_provider_insert(&mut self, provider: &OidcProvider) -> Result<()> {
                self.oidc().provider_insert(provider).await
            }

            async fn oidc_provider_update(&mut self, provider: &OidcProvider) -> Result<bool> {
                self.oidc().provider_update(provider).await
            }

            async fn oidc_provider_delete(&mut self, name: &str) -> Result<bool> {
                self.oidc().provider_delete(name).await
            }

            async fn oidc_state_insert(&mut self, state: &OidcLoginState) -> Result<()> {
                self.oidc().state_insert(state).await
            }

            async fn oidc_state_take(&mut self, hash: &[u8]) -> Result<Option<OidcLoginState>> {
                self.oidc().state_take(hash).await
            }

            async fn oidc_state_purge(&mut self, now: Millis) -> Result<u64> {
                self.oidc().state_purge(now).await
            }

            async fn oidc_link_by_subject(
                &mut self,
                provider_id: uuid::Uuid,
                subject: &str,
            ) -> Result<Option<OidcLink>> {
                self.oidc().link_by_subject(provider_id, subject).await
            }

            async fn oidc_link_insert(&mut self, link: &OidcLink) -> Result<()> {
                self.oidc().link_insert(link).await
            }

            async fn oidc_link_login(
                &mut self,
                id: uuid::Uuid,
                now: Millis,
                refresh_token_enc: Option<&str>,
            ) -> Result<()> {
                self.oidc().link_login(id, now, refresh_token_enc).await
            }

            async fn oidc_links_for_user(&mut self, user: UserId) -> Result<Vec<OidcLink>> {
                self.oidc().links_for_user(user).await
            }

            async fn oidc_refresh_tokens(&mut self) -> Result<Vec<(uuid::Uuid, String)>> {
                self.oidc().refresh_tokens().await
            }

            async fn oidc_refresh_token_rewrite(
                &mut self,
                id: uuid::Uuid,
                old: &str,
                new: &str,
            ) -> Result<bool> {
                self.oidc().refresh_token_rewrite(id, old, new).await
            }
        }
    };
}
pub(crate) use impl_backend;

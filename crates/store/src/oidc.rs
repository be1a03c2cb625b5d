//! Storage for sign-in with upstream OpenID Connect providers: providers, pending
//! sign-ins and account links. Apart from `common.rs` so that modules stay small; the
//! `TenantTx` methods there are one-line delegations to these queries.

/// Expands to a private `oidc` module holding the OIDC queries of `$tx` (see
/// `impl_backend!` for the shape of `$tx`). `$db` must be a path that resolves from any
/// module (`sqlx::Sqlite`, not `Sqlite`).
macro_rules! impl_oidc {
    ($tx:ident, $db:ty, $dir:literal) => {
        mod oidc {
            use aegis_core::clock::Millis;
            use aegis_core::ids::{TenantId, UserId};
            use aegis_core::oidc::{OidcLink, OidcLoginState, OidcProvider};
            use aegis_core::{CoreError, Result};
            use sqlx::Row;
            use $crate::common::sql;
            use $crate::db_err;

            type DbRow = <$db as sqlx::Database>::Row;
            type Conn = <$db as sqlx::Database>::Connection;

            /// The OIDC queries, run on the transaction's connection and bound to its
            /// tenant: `tx.oidc().provider_by_name(..)`.
            pub(super) struct OidcQueries<'a> {
                conn: &'a mut Conn,
                tenant: TenantId,
            }

            impl super::$tx {
                pub(super) fn oidc(&mut self) -> OidcQueries<'_> {
                    OidcQueries {
                        conn: &mut *self.tx,
                        tenant: self.tenant,
                    }
                }
            }

            /// Settings are stored as JSON without the two secrets (the serialiser skips
            /// them), so a decoded provider's `settings` never holds one: the ciphertexts
            /// live in their own columns.
            fn provider_from_row(r: &DbRow) -> Result<OidcProvider> {
                let settings: String = r.try_get("settings").map_err(db_err)?;
                Ok(OidcProvider {
                    id: r.try_get("id").map_err(db_err)?,
                    tenant_id: TenantId(r.try_get("tenant_id").map_err(db_err)?),
                    name: r.try_get("name").map_err(db_err)?,
                    settings: serde_json::from_str(&settings)
                        .map_err(|e| CoreError::Storage(format!("oidc_providers.settings: {e}")))?,
                    client_secret_enc: r.try_get("client_secret_enc").map_err(db_err)?,
                    private_key_enc: r.try_get("private_key_enc").map_err(db_err)?,
                    created_at: r.try_get("created_at").map_err(db_err)?,
                    updated_at: r.try_get("updated_at").map_err(db_err)?,
                })
            }

            fn settings_json(p: &OidcProvider) -> Result<String> {
                serde_json::to_string(&p.settings)
                    .map_err(|e| CoreError::Internal(format!("oidc provider settings: {e}")))
            }

            fn state_from_row(r: &DbRow) -> Result<OidcLoginState> {
                Ok(OidcLoginState {
                    id: r.try_get("id").map_err(db_err)?,
                    provider_id: r.try_get("provider_id").map_err(db_err)?,
                    state_hash: r.try_get("state_hash").map_err(db_err)?,
                    binding_hash: r.try_get("binding_hash").map_err(db_err)?,
                    nonce_hash: r.try_get("nonce_hash").map_err(db_err)?,
                    verifier_enc: r.try_get("verifier_enc").map_err(db_err)?,
                    redirect_uri: r.try_get("redirect_uri").map_err(db_err)?,
                    return_to: r.try_get("return_to").map_err(db_err)?,
                    created_at: r.try_get("created_at").map_err(db_err)?,
                    expires_at: r.try_get("expires_at").map_err(db_err)?,
                })
            }

            fn link_from_row(r: &DbRow) -> Result<OidcLink> {
                Ok(OidcLink {
                    id: r.try_get("id").map_err(db_err)?,
                    user_id: UserId(r.try_get("user_id").map_err(db_err)?),
                    provider_id: r.try_get("provider_id").map_err(db_err)?,
                    subject: r.try_get("subject").map_err(db_err)?,
                    refresh_token_enc: r.try_get("refresh_token_enc").map_err(db_err)?,
                    created_at: r.try_get("created_at").map_err(db_err)?,
                    last_login_at: r.try_get("last_login_at").map_err(db_err)?,
                })
            }

            impl OidcQueries<'_> {
                pub(super) async fn provider_by_name(
                    self,
                    name: &str,
                ) -> Result<Option<OidcProvider>> {
                    sqlx::query(sql!($dir, "oidc_provider_by_name"))
                        .bind(self.tenant.0)
                        .bind(name.to_string())
                        .fetch_optional(&mut *self.conn)
                        .await
                        .map_err(db_err)?
                        .as_ref()
                        .map(provider_from_row)
                        .transpose()
                }

                pub(super) async fn provider_list(self) -> Result<Vec<OidcProvider>> {
                    sqlx::query(sql!($dir, "oidc_provider_list"))
                        .bind(self.tenant.0)
                        .fetch_all(&mut *self.conn)
                        .await
                        .map_err(db_err)?
                        .iter()
                        .map(provider_from_row)
                        .collect()
                }

                pub(super) async fn provider_insert(self, p: &OidcProvider) -> Result<()> {
                    sqlx::query(sql!($dir, "oidc_provider_insert"))
                        .bind(self.tenant.0)
                        .bind(p.id)
                        .bind(p.name.clone())
                        .bind(settings_json(p)?)
                        .bind(p.client_secret_enc.clone())
                        .bind(p.private_key_enc.clone())
                        .bind(p.created_at)
                        .bind(p.updated_at)
                        .execute(&mut *self.conn)
                        .await
                        .map_err(|e| match db_err(e) {
                            CoreError::Conflict(_) => CoreError::Conflict(
                                "name: a provider with this name already exists".into(),
                            ),
                            other => other,
                        })?;
                    Ok(())
                }

                pub(super) async fn provider_update(self, p: &OidcProvider) -> Result<bool> {
                    let r = sqlx::query(sql!($dir, "oidc_provider_update"))
                        .bind(self.tenant.0)
                        .bind(p.id)
                        .bind(settings_json(p)?)
                        .bind(p.client_secret_enc.clone())
                        .bind(p.private_key_enc.clone())
                        .bind(p.updated_at)
                        .execute(&mut *self.conn)
                        .await
                        .map_err(db_err)?;
                    Ok(r.rows_affected() == 1)
                }

                /// Links and pending sign-ins go with it (ON DELETE CASCADE).
                pub(super) async fn provider_delete(self, name: &str) -> Result<bool> {
                    let r = sqlx::query(sql!($dir, "oidc_provider_delete"))
                        .bind(self.tenant.0)
                        .bind(name.to_string())
                        .execute(&mut *self.conn)
                        .await
                        .map_err(db_err)?;
                    Ok(r.rows_affected() > 0)
                }

                pub(super) async fn state_insert(self, s: &OidcLoginState) -> Result<()> {
                    sqlx::query(sql!($dir, "oidc_state_insert"))
                        .bind(self.tenant.0)
                        .bind(s.id)
                        .bind(s.provider_id)
                        .bind(s.state_hash.clone())
                        .bind(s.binding_hash.clone())
                        .bind(s.nonce_hash.clone())
                        .bind(s.verifier_enc.clone())
                        .bind(s.redirect_uri.clone())
                        .bind(s.return_to.clone())
                        .bind(s.created_at)
                        .bind(s.expires_at)
                        .execute(&mut *self.conn)
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                /// No expiry filter: the caller tells an expired sign-in from an unknown
                /// one, and the row is consumed either way.
                pub(super) async fn state_take(
                    self,
                    state_hash: &[u8],
                ) -> Result<Option<OidcLoginState>> {
                    sqlx::query(sql!($dir, "oidc_state_take"))
                        .bind(self.tenant.0)
                        .bind(state_hash.to_vec())
                        .fetch_optional(&mut *self.conn)
                        .await
                        .map_err(db_err)?
                        .as_ref()
                        .map(state_from_row)
                        .transpose()
                }

                /// `expires_at <= now`, the same test the callback applies.
                pub(super) async fn state_purge(self, now: Millis) -> Result<u64> {
                    let r = sqlx::query(sql!($dir, "oidc_state_purge"))
                        .bind(self.tenant.0)
                        .bind(now)
                        .execute(&mut *self.conn)
                        .await
                        .map_err(db_err)?;
                    Ok(r.rows_affected())
                }

                pub(super) async fn link_by_subject(
                    self,
                    provider_id: uuid::Uuid,
                    subject: &str,
                ) -> Result<Option<OidcLink>> {
                    sqlx::query(sql!($dir, "oidc_link_by_subject"))
                        .bind(self.tenant.0)
                        .bind(provider_id)
                        .bind(subject.to_string())
                        .fetch_optional(&mut *self.conn)
                        .await
                        .map_err(db_err)?
                        .as_ref()
                        .map(link_from_row)
                        .transpose()
                }

                pub(super) async fn link_insert(self, l: &OidcLink) -> Result<()> {
                    sqlx::query(sql!($dir, "oidc_link_insert"))
                        .bind(self.tenant.0)
                        .bind(l.id)
                        .bind(l.user_id.0)
                        .bind(l.provider_id)
                        .bind(l.subject.clone())
                        .bind(l.refresh_token_enc.clone())
                        .bind(l.created_at)
                        .bind(l.last_login_at)
                        .execute(&mut *self.conn)
                        .await
                        .map_err(|e| match db_err(e) {
                            CoreError::Conflict(_) => {
                                CoreError::Conflict("identity already linked".into())
                            }
                            other => other,
                        })?;
                    Ok(())
                }

                /// Providers send a refresh token only now and then; a sign-in without
                /// one must not erase the stored token (`COALESCE`).
                pub(super) async fn link_login(
                    self,
                    id: uuid::Uuid,
                    now: Millis,
                    refresh_token_enc: Option<&str>,
                ) -> Result<()> {
                    sqlx::query(sql!($dir, "oidc_link_login"))
                        .bind(self.tenant.0)
                        .bind(id)
                        .bind(now)
                        .bind(refresh_token_enc.map(str::to_string))
                        .execute(&mut *self.conn)
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                pub(super) async fn links_for_user(self, user: UserId) -> Result<Vec<OidcLink>> {
                    sqlx::query(sql!($dir, "oidc_links_for_user"))
                        .bind(self.tenant.0)
                        .bind(user.0)
                        .fetch_all(&mut *self.conn)
                        .await
                        .map_err(db_err)?
                        .iter()
                        .map(link_from_row)
                        .collect()
                }

                pub(super) async fn refresh_tokens(self) -> Result<Vec<(uuid::Uuid, String)>> {
                    sqlx::query(sql!($dir, "oidc_refresh_tokens"))
                        .bind(self.tenant.0)
                        .fetch_all(&mut *self.conn)
                        .await
                        .map_err(db_err)?
                        .iter()
                        .map(|r| {
                            Ok((
                                r.try_get("id").map_err(db_err)?,
                                r.try_get("refresh_token_enc").map_err(db_err)?,
                            ))
                        })
                        .collect()
                }

                /// Compare-and-swap on the old ciphertext, so a sign-in that stored a
                /// fresh token meanwhile is not overwritten by a re-encrypted stale one.
                pub(super) async fn refresh_token_rewrite(
                    self,
                    id: uuid::Uuid,
                    old: &str,
                    new: &str,
                ) -> Result<bool> {
                    let r = sqlx::query(sql!($dir, "oidc_refresh_token_rewrite"))
                        .bind(self.tenant.0)
                        .bind(id)
                        .bind(new.to_string())
                        .bind(old.to_string())
                        .execute(&mut *self.conn)
                        .await
                        .map_err(db_err)?;
                    Ok(r.rows_affected() == 1)
                }
            }
        }
    };
}
pub(crate) use impl_oidc;

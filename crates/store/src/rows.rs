//! Row decoding (and the one encoded column) shared by both backends: the same Rust for
//! `SqliteRow` and `PgRow`.

/// Expands to a private `rows` module of decoders for `$db`'s rows. `$db` must be a
/// path that resolves from any module (`sqlx::Sqlite`, not `Sqlite`).
macro_rules! impl_rows {
    ($db:ty) => {
        mod rows {
            use aegis_core::ids::{AuditId, SessionId, TenantId, UserId};
            use aegis_core::model::{
                AuditEvent, AuthMethod, HashAlgorithm, MfaPolicy, Role, Session, Tenant, User,
            };
            use aegis_core::{CoreError, Result};
            use sqlx::Row;
            use $crate::db_err;

            type DbRow = <$db as sqlx::Database>::Row;

            pub(super) fn tenant_from_row(r: &DbRow) -> Result<Tenant> {
                Ok(Tenant {
                    id: TenantId(r.try_get("id").map_err(db_err)?),
                    slug: r.try_get("slug").map_err(db_err)?,
                    name: r.try_get("name").map_err(db_err)?,
                    host: r.try_get("host").map_err(db_err)?,
                    disabled: r.try_get("disabled").map_err(db_err)?,
                    created_at: r.try_get("created_at").map_err(db_err)?,
                    mfa_policy: {
                        let p: String = r.try_get("mfa_policy").map_err(db_err)?;
                        MfaPolicy::parse(&p)
                            .ok_or_else(|| CoreError::Storage(format!("unknown mfa policy {p}")))?
                    },
                    require_verified_email: r.try_get("require_verified_email").map_err(db_err)?,
                })
            }

            pub(super) fn user_from_row(r: &DbRow) -> Result<User> {
                let alg: String = r.try_get("password_algorithm").map_err(db_err)?;
                let role: String = r.try_get("role").map_err(db_err)?;
                Ok(User {
                    id: UserId(r.try_get("id").map_err(db_err)?),
                    tenant_id: TenantId(r.try_get("tenant_id").map_err(db_err)?),
                    email: r.try_get("email").map_err(db_err)?,
                    password_hash: r.try_get("password_hash").map_err(db_err)?,
                    password_algorithm: HashAlgorithm::parse(&alg).ok_or_else(|| {
                        CoreError::Storage(format!("unknown hash algorithm {alg}"))
                    })?,
                    role: Role::parse(&role)
                        .ok_or_else(|| CoreError::Storage(format!("unknown role {role}")))?,
                    failed_attempts: r.try_get("failed_attempts").map_err(db_err)?,
                    locked_until: r.try_get("locked_until").map_err(db_err)?,
                    last_login_at: r.try_get("last_login_at").map_err(db_err)?,
                    last_login_ip: r.try_get("last_login_ip").map_err(db_err)?,
                    created_at: r.try_get("created_at").map_err(db_err)?,
                    updated_at: r.try_get("updated_at").map_err(db_err)?,
                    email_verified_at: r.try_get("email_verified_at").map_err(db_err)?,
                })
            }

            /// Session columns are selected with an `s_` prefix so they can share a row
            /// with user columns. `extra_roles` is NULL for sessions without any (most of
            /// them), so password sessions carry no JSON at all.
            pub(super) fn session_from_row(r: &DbRow, tenant: TenantId) -> Result<Session> {
                let method: String = r.try_get("s_auth_method").map_err(db_err)?;
                let roles: Option<String> = r.try_get("s_extra_roles").map_err(db_err)?;
                Ok(Session {
                    id: SessionId(r.try_get("s_id").map_err(db_err)?),
                    tenant_id: tenant,
                    user_id: UserId(r.try_get("s_user_id").map_err(db_err)?),
                    token_hash: r.try_get("s_token_hash").map_err(db_err)?,
                    created_at: r.try_get("s_created_at").map_err(db_err)?,
                    expires_at: r.try_get("s_expires_at").map_err(db_err)?,
                    last_seen_at: r.try_get("s_last_seen_at").map_err(db_err)?,
                    ip: r.try_get("s_ip").map_err(db_err)?,
                    user_agent: r.try_get("s_user_agent").map_err(db_err)?,
                    auth_method: AuthMethod::parse(&method).ok_or_else(|| {
                        CoreError::Storage(format!("unknown auth method {method}"))
                    })?,
                    extra_roles: match roles {
                        None => Vec::new(),
                        Some(json) => serde_json::from_str(&json)
                            .map_err(|e| CoreError::Storage(format!("session extra_roles: {e}")))?,
                    },
                })
            }

            /// How `session_from_row` expects `extra_roles`: a JSON array, or NULL for none.
            pub(super) fn extra_roles_column(roles: &[String]) -> Result<Option<String>> {
                if roles.is_empty() {
                    return Ok(None);
                }
                serde_json::to_string(roles)
                    .map(Some)
                    .map_err(|e| CoreError::Internal(format!("session extra_roles: {e}")))
            }

            pub(super) fn audit_from_row(r: &DbRow) -> Result<AuditEvent> {
                let details: String = r.try_get("details").map_err(db_err)?;
                let actor: Option<uuid::Uuid> = r.try_get("actor_id").map_err(db_err)?;
                Ok(AuditEvent {
                    id: AuditId(r.try_get("id").map_err(db_err)?),
                    tenant_id: TenantId(r.try_get("tenant_id").map_err(db_err)?),
                    occurred_at: r.try_get("occurred_at").map_err(db_err)?,
                    request_id: r.try_get("request_id").map_err(db_err)?,
                    actor_id: actor.map(UserId),
                    actor_kind: r.try_get("actor_kind").map_err(db_err)?,
                    action: r.try_get("action").map_err(db_err)?,
                    resource: r.try_get("resource").map_err(db_err)?,
                    outcome: r.try_get("outcome").map_err(db_err)?,
                    ip: r.try_get("ip").map_err(db_err)?,
                    user_agent: r.try_get("user_agent").map_err(db_err)?,
                    details: serde_json::from_str(&details)
                        .map_err(|e| CoreError::Storage(format!("audit details: {e}")))?,
                    risk_score: r.try_get("risk_score").map_err(db_err)?,
                })
            }
        }
    };
}
pub(crate) use impl_rows;

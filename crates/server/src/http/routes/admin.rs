//! Administration: users of the caller's tenant (tenant admins) and tenants (admins of
//! the default tenant).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use aegis_core::accounts::AccountOrigin;
use aegis_core::model::{MfaPolicy, Role, UserView};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, ApiJson, ApiQuery, Meta, SystemAdmin};
use crate::http::state::AppState;

/// Paging parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /api/v1/admin/users`
pub async fn list_users(
    State(state): State<AppState>,
    Admin(who): Admin,
    ApiQuery(p): ApiQuery<Page>,
) -> ApiResult<Json<Value>> {
    let limit = p.limit.unwrap_or(100);
    let offset = p.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::BadRequest(
            "limit: must be 1..=1000; offset: must be >= 0".into(),
        ));
    }
    let users = state
        .accounts
        .list_users(who.tenant_id, limit, offset)
        .await?;
    let users: Vec<UserView> = users.iter().map(UserView::from).collect();
    Ok(Json(json!({ "users": users })))
}

/// Body of `POST /api/v1/admin/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    password: SecretString,
    role: Role,
}

/// `POST /api/v1/admin/users`
pub async fn create_user(
    State(state): State<AppState>,
    Admin(who): Admin,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let user = state
        .accounts
        .register(
            who.tenant_id,
            &body.email,
            &body.password,
            AccountOrigin::by_operator(body.role, Some(who.user_id)),
            &meta,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": UserView::from(&user)})),
    ))
}

/// `GET /api/v1/admin/tenants`
pub async fn list_tenants(
    State(state): State<AppState>,
    SystemAdmin(_): SystemAdmin,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "tenants": state.tenants.list().await? })))
}

/// Body of `POST /api/v1/admin/tenants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    slug: String,
    name: String,
    host: Option<String>,
}

/// `POST /api/v1/admin/tenants`
pub async fn create_tenant(
    State(state): State<AppState>,
    SystemAdmin(who): SystemAdmin,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<NewTenant>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let t = state
        .tenants
        .create(
            who.tenant_id,
            Some(who.user_id),
            &body.slug,
            &body.name,
            body.host.as_deref(),
            &meta,
        )
        .await?;
    state.tenant_cache.clear();
    Ok((StatusCode::CREATED, Json(json!({ "tenant": t }))))
}

async fn set_disabled(
    state: &AppState,
    who: &aegis_core::model::Identity,
    slug: &str,
    disabled: bool,
    meta: &aegis_core::model::RequestMeta,
) -> ApiResult<StatusCode> {
    state
        .tenants
        .set_disabled(who.tenant_id, Some(who.user_id), slug, disabled, meta)
        .await?;
    state.tenant_cache.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/admin/tenants/{slug}/disable`
pub async fn disable_tenant(
    State(state): State<AppState>,
    SystemAdmin(who): SystemAdmin,
    Meta(meta): Meta,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    set_disabled(&state, &who, &slug, true, &meta).await
}

/// `POST /api/v1/admin/tenants/{slug}/enable`
pub async fn enable_tenant(
    State(state): State<AppState>,
    SystemAdmin(who): SystemAdmin,
    Meta(meta): Meta,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    set_disabled(&state, &who, &slug, false, &meta).await
}

/// Body of `PUT /api/v1/admin/mfa-policy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaPolicyBody {
    policy: MfaPolicy,
}

/// `PUT /api/v1/admin/mfa-policy`: who in the caller's tenant must use MFA
/// (`optional`, `admins`, `everyone`).
pub async fn set_mfa_policy(
    State(state): State<AppState>,
    Admin(who): Admin,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<MfaPolicyBody>,
) -> ApiResult<Json<Value>> {
    state
        .tenants
        .set_mfa_policy(who.tenant_id, Some(who.user_id), body.policy, &meta)
        .await?;
    state.tenant_cache.clear();
    Ok(Json(json!({"mfa_policy": body.policy.as_str()})))
}

/// Body of `PUT /api/v1/admin/email-policy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailPolicyBody {
    require_verified: bool,
}

/// `PUT /api/v1/admin/email-policy`: whether users of the caller's tenant must verify
/// their address before signing in.
pub async fn set_email_policy(
    State(state): State<AppState>,
    Admin(who): Admin,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<EmailPolicyBody>,
) -> ApiResult<Json<Value>> {
    state
        .tenants
        .set_email_policy(
            who.tenant_id,
            Some(who.user_id),
            body.require_verified,
            &meta,
        )
        .await?;
    state.tenant_cache.clear();
    Ok(Json(
        json!({"require_verified_email": body.require_verified}),
    ))
}

//! Registration, login, logout, current session, CSRF token, password change.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use aegis_core::accounts::{AccountOrigin, LoginOutcome};
use aegis_core::clock::Millis;
use aegis_core::ids::{SessionId, TenantId, UserId};
use aegis_core::model::{AuthMethod, Identity, Tenant, User, UserView};
use aegis_core::sessions::NewSession;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, Authed, CurrentTenant, Meta, csrf_token};
use crate::http::state::AppState;

/// Body of register and login.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    email: String,
    password: SecretString,
    /// `cookie` (default) sets the session cookie; `token` returns the session token in
    /// the body for non-browser clients, who then send it as a bearer token.
    #[serde(default)]
    session_delivery: Option<Delivery>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    Cookie,
    Token,
}

/// `POST /api/v1/register`
pub async fn register(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult<Response> {
    if body.session_delivery.is_some() {
        return Err(ApiError::Unprocessable(
            "session_delivery: only accepted by login".into(),
        ));
    }
    let user = state
        .accounts
        .register(
            tenant.id,
            &body.email,
            &body.password,
            AccountOrigin::self_registered(),
            &meta,
        )
        .await?;
    // The verification mail; a failure here leaves a registered account that can ask
    // for a new code, so it does not undo the registration.
    if let Err(e) = state
        .recovery
        .start_verification(tenant.id, &user, &meta)
        .await
    {
        tracing::warn!(error = %e, "could not start e-mail verification");
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": UserView::from(&user)})),
    )
        .into_response())
}

fn session_response(
    state: &AppState,
    new: &NewSession,
    delivery: Delivery,
    body: serde_json::Value,
) -> ApiResult<Response> {
    let mut body = body;
    body["session"] = json!({
        "id": new.session.id,
        "expires_at": new.session.expires_at,
    });
    if delivery == Delivery::Token {
        body["session_token"] = json!(new.token.expose_secret());
        return Ok(Json(body).into_response());
    }
    let cookie = state
        .cookie
        .set(new.token.expose_secret())
        .ok_or_else(|| ApiError::Internal("cookie encoding".into()))?;
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// `POST /api/v1/login`
pub async fn login(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult<Response> {
    let outcome = state
        .accounts
        .login(
            tenant.id,
            &body.email,
            &body.password,
            tenant.require_verified_email,
            &meta,
        )
        .await?;
    let (user, new) = match outcome {
        LoginOutcome::Session(user, new) => (user, new),
        LoginOutcome::MfaRequired(_, pending) => {
            // Not a session: a single-purpose token for POST /api/v1/login/mfa.
            return Ok(Json(json!({
                "mfa_required": true,
                "mfa_token": pending.token.expose_secret(),
                "expires_at": pending.expires_at,
                "methods": ["totp", "backup_code"],
            }))
            .into_response());
        }
    };
    signed_in(&state, &user, &new, body.session_delivery)
}

/// The answer to a completed login: the session (cookie or token) and the CSRF token.
pub fn signed_in(
    state: &AppState,
    user: &User,
    new: &NewSession,
    delivery: Option<Delivery>,
) -> ApiResult<Response> {
    let csrf = csrf_token(&state.secret_key, new.session.id);
    session_response(
        state,
        new,
        delivery.unwrap_or(Delivery::Cookie),
        json!({"user": UserView::from(user), "csrf_token": csrf}),
    )
}

/// `POST /api/v1/logout`
pub async fn logout(
    State(state): State<AppState>,
    Authed(who): Authed,
    Meta(meta): Meta,
) -> ApiResult<Response> {
    state.sessions.logout(&who, &meta).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(clear) = state.cookie.clear() {
        resp.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(resp)
}

/// `GET /api/v1/session`: who is calling.
pub async fn session(CurrentTenant(tenant): CurrentTenant, Authed(who): Authed) -> Response {
    SessionAnswer { who, tenant }.into_response()
}

/// The answer of `GET /api/v1/session`, serialised straight from the shared identity
/// and tenant. Not a `json!` tree: this is the hottest endpoint, and the tree cost a
/// map node and a string copy per field.
pub struct SessionAnswer {
    who: Arc<Identity>,
    tenant: Arc<Tenant>,
}

impl IntoResponse for SessionAnswer {
    /// Serialised into a buffer of the answer's usual size, so it is written once
    /// rather than grown and copied.
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(384);
        match serde_json::to_writer(&mut body, &self) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => ApiError::Internal(format!("serialising the session: {e}")).into_response(),
        }
    }
}

impl Serialize for SessionAnswer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Answer<'a> {
            user: UserFacts<'a>,
            tenant: TenantFacts<'a>,
            roles: &'a [String],
            session: SessionFacts,
        }
        #[derive(Serialize)]
        struct UserFacts<'a> {
            id: UserId,
            email: &'a str,
        }
        #[derive(Serialize)]
        struct TenantFacts<'a> {
            id: TenantId,
            slug: &'a str,
        }
        #[derive(Serialize)]
        struct SessionFacts {
            id: SessionId,
            expires_at: Millis,
            auth_method: AuthMethod,
        }
        let (who, tenant) = (&self.who, &self.tenant);
        Answer {
            user: UserFacts {
                id: who.user_id,
                email: &who.email,
            },
            tenant: TenantFacts {
                id: tenant.id,
                slug: &tenant.slug,
            },
            roles: &who.roles,
            session: SessionFacts {
                id: who.session_id,
                expires_at: who.session_expires_at,
                auth_method: who.auth_method,
            },
        }
        .serialize(s)
    }
}

/// `GET /api/v1/csrf`: the synchronizer token for this session.
pub async fn csrf(State(state): State<AppState>, Authed(who): Authed) -> Json<serde_json::Value> {
    Json(json!({
        "csrf_token": csrf_token(&state.secret_key, who.session_id),
        "header": "X-CSRF-Token",
    }))
}

/// Body of a password change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: SecretString,
    new_password: SecretString,
}

/// `POST /api/v1/password`: revokes every session and issues a new one.
pub async fn change_password(
    State(state): State<AppState>,
    Authed(who): Authed,
    Meta(meta): Meta,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<Response> {
    let new = state
        .accounts
        .change_password(&who, &body.current_password, &body.new_password, &meta)
        .await?;
    let csrf = csrf_token(&state.secret_key, new.session.id);
    // Answer in the same form the caller authenticated with.
    let delivery = if state.cookie.read(&headers).is_some() {
        Delivery::Cookie
    } else {
        Delivery::Token
    };
    session_response(&state, &new, delivery, json!({"csrf_token": csrf}))
}

/// Body of a reset request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    email: String,
}

/// `POST /api/v1/password/reset/request`: the same answer whether or not the address
/// has an account.
pub async fn request_reset(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<ResetRequest>,
) -> ApiResult<Response> {
    state
        .recovery
        .request_reset(tenant.id, &body.email, &meta)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "if this address has an account, a reset code is on its way"})),
    )
        .into_response())
}

/// Body of a reset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    token: SecretString,
    new_password: SecretString,
}

/// `POST /api/v1/password/reset`: sets the password, revokes every session.
pub async fn reset(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<Reset>,
) -> ApiResult<Response> {
    state
        .recovery
        .reset(tenant.id, &body.token, &body.new_password, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A mailed code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    token: SecretString,
}

/// `POST /api/v1/email/verify`
pub async fn verify_email(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<VerifyBody>,
) -> ApiResult<Response> {
    state
        .recovery
        .verify_email(tenant.id, &body.token, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/email/verify/resend`: the same answer for every address.
pub async fn resend_verification(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<ResetRequest>,
) -> ApiResult<Response> {
    state
        .recovery
        .resend_verification(tenant.id, &body.email, &meta)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "if this address has an unverified account, a new code is on its way"})),
    )
        .into_response())
}

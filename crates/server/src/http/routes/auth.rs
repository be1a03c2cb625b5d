//! Registration, login, logout, current session, CSRF token, password change.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use aegis_core::accounts::{AccountOrigin, LoginOutcome};
use aegis_core::model::{Identity, Tenant, User, UserView};
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

/// The answer of `GET /api/v1/session`, written straight from the shared identity and
/// tenant. This is the hottest endpoint: the fixed parts of the JSON are literals, ids
/// are hex-encoded in place, and only the free-text fields (e-mail, slug, roles) go
/// through serde_json's string escaping. (A derived `Serialize` spent a tenth of a
/// session check escaping the field names and ids, which never need it.)
pub struct SessionAnswer {
    who: Arc<Identity>,
    tenant: Arc<Tenant>,
}

impl SessionAnswer {
    /// The JSON body: `{"user":{"id","email"},"tenant":{"id","slug"},"roles":[..],
    /// "session":{"id","expires_at","auth_method"}}`.
    fn render(&self) -> serde_json::Result<Vec<u8>> {
        let (who, tenant) = (&self.who, &self.tenant);
        let mut out = Vec::with_capacity(self.unescaped_len());
        out.extend_from_slice(b"{\"user\":{\"id\":");
        push_uuid(&mut out, &who.user_id.0);
        out.extend_from_slice(b",\"email\":");
        serde_json::to_writer(&mut out, &who.email)?;
        out.extend_from_slice(b"},\"tenant\":{\"id\":");
        push_uuid(&mut out, &tenant.id.0);
        out.extend_from_slice(b",\"slug\":");
        serde_json::to_writer(&mut out, &tenant.slug)?;
        out.extend_from_slice(b"},\"roles\":");
        serde_json::to_writer(&mut out, &who.roles)?;
        out.extend_from_slice(b",\"session\":{\"id\":");
        push_uuid(&mut out, &who.session_id.0);
        out.extend_from_slice(b",\"expires_at\":");
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(who.session_expires_at)
                .as_bytes(),
        );
        out.extend_from_slice(b",\"auth_method\":\"");
        out.extend_from_slice(who.auth_method.as_str().as_bytes());
        out.extend_from_slice(b"\"}}");
        Ok(out)
    }
}

impl SessionAnswer {
    /// The length of the answer when no text needs escaping (the usual case): the
    /// buffer is allocated at its final size, and the session cache keeps no spare
    /// capacity with the rendering.
    fn unescaped_len(&self) -> usize {
        const FIXED: &str = r#"{"user":{"id":,"email":},"tenant":{"id":,"slug":},"roles":,"session":{"id":,"expires_at":,"auth_method":""}}"#;
        const QUOTED_UUID: usize = uuid::fmt::Hyphenated::LENGTH + 2;
        let (who, tenant) = (&self.who, &self.tenant);
        let roles: usize = who.roles.iter().map(|r| r.len() + 3).sum::<usize>() + 1;
        FIXED.len()
            + 3 * QUOTED_UUID
            + who.email.len()
            + 2
            + tenant.slug.len()
            + 2
            + roles.max(2)
            + itoa::Buffer::new().format(who.session_expires_at).len()
            + who.auth_method.as_str().len()
    }
}

/// A UUID as a JSON string (hyphenated, lower case: what its `Serialize` writes).
fn push_uuid(out: &mut Vec<u8>, id: &uuid::Uuid) {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
    out.push(b'"');
}

impl IntoResponse for SessionAnswer {
    /// The body is rendered once per cached identity and shared by every answer after
    /// that (see `Rendered`), with its type and length (the frame's JSON shape, see
    /// `AnswerHeaders`).
    fn into_response(self) -> Response {
        let rendered = self
            .who
            .rendered
            .get_or_render(|| self.render().map(Bytes::from_owner));
        match rendered {
            Ok(body) => {
                let length = HeaderValue::from(body.len());
                let mut resp = Response::new(Body::from(body));
                let headers = resp.headers_mut();
                headers.reserve(2);
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                headers.insert(header::CONTENT_LENGTH, length);
                resp
            }
            Err(e) => ApiError::Internal(format!("serialising the session: {e}")).into_response(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::ids::{SessionId, TenantId, UserId};
    use aegis_core::model::{AuthMethod, MfaPolicy};

    fn answer(email: &str, slug: &str, roles: &[&str], method: AuthMethod) -> SessionAnswer {
        SessionAnswer {
            who: Arc::new(Identity {
                user_id: UserId::new(),
                tenant_id: TenantId::new(),
                email: email.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                session_id: SessionId::new(),
                session_expires_at: 1_796_197_960_346,
                auth_method: method,
                rendered: Default::default(),
            }),
            tenant: Arc::new(Tenant {
                id: TenantId::new(),
                slug: slug.into(),
                name: "Acme".into(),
                host: None,
                disabled: false,
                created_at: 0,
                mfa_policy: MfaPolicy::Optional,
                require_verified_email: false,
            }),
        }
    }

    /// The hand-written answer is the JSON a derived serializer would write, also for
    /// text that needs escaping.
    #[test]
    fn session_answer_is_the_expected_json() {
        for a in [
            answer(
                "ada@example.com",
                "default",
                &["member"],
                AuthMethod::Password,
            ),
            answer(
                "\"q\\u\"@ex.com\u{7}é",
                "a-b",
                &["admin", "x\"y"],
                AuthMethod::Oidc,
            ),
            answer("", "t", &[], AuthMethod::Password),
            answer(
                "b@example.com",
                "acme",
                &["admin", "member"],
                AuthMethod::Oidc,
            ),
        ] {
            let body = a.render().unwrap();
            let plain = |t: &str| !t.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
            if plain(&a.who.email) && plain(&a.tenant.slug) && a.who.roles.iter().all(|r| plain(r))
            {
                // Sized exactly: the buffer becomes the body without a copy.
                assert_eq!(
                    body.len(),
                    a.unescaped_len(),
                    "{}",
                    String::from_utf8_lossy(&body)
                );
            }
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let (who, tenant) = (&a.who, &a.tenant);
            let expected = json!({
                "user": {"id": who.user_id, "email": who.email},
                "tenant": {"id": tenant.id, "slug": tenant.slug},
                "roles": who.roles,
                "session": {
                    "id": who.session_id,
                    "expires_at": who.session_expires_at,
                    "auth_method": who.auth_method,
                },
            });
            assert_eq!(parsed, expected);
            assert!(body.starts_with(b"{\"user\":{\"id\":\""));
        }
    }
}

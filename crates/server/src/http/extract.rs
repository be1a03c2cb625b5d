//! Extractors: JSON bodies and queries with precise errors, request facts, the tenant,
//! and the authenticated identity (with CSRF enforcement for cookie sessions).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use serde::de::DeserializeOwned;

use aegis_core::clock::Millis;
use aegis_core::crypto::{b64url, constant_time_eq, hmac_sha256};
use aegis_core::ids::SessionId;
use aegis_core::model::{AuthMethod, Identity, RequestMeta, Tenant};

use super::client_ip::client_ip;
use super::error::ApiError;
use super::state::AppState;

/// Header carrying the synchronizer CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Removes echoed values from serde messages (`invalid type: string "hunter2"`), so a
/// secret sent in the wrong field type is never reflected back.
fn sanitize_serde_message(msg: &str) -> String {
    if msg.contains("invalid type") || msg.contains("invalid value") {
        let mut out = String::new();
        let mut in_tick = false;
        for c in msg.chars() {
            if c == '`' {
                in_tick = !in_tick;
                if !in_tick {
                    out.push_str("`…`");
                }
            } else if !in_tick {
                out.push(c);
            }
        }
        return out;
    }
    msg.to_string()
}

/// A JSON body. Unknown fields, wrong types, bad syntax and oversized bodies each get a
/// clear 4xx answer.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            )),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::BadRequest(format!(
                "malformed JSON: {}",
                sanitize_serde_message(
                    &e.body_text()
                        .replace("Failed to parse the request body as JSON: ", "")
                )
            ))),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Unprocessable(
                sanitize_serde_message(&e.body_text().replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                )),
            )),
            Err(JsonRejection::BytesRejection(e)) => {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::PayloadTooLarge(
                        "request body exceeds the configured limit".into(),
                    ))
                } else {
                    Err(ApiError::BadRequest("could not read request body".into()))
                }
            }
            Err(_) => Err(ApiError::BadRequest("invalid JSON body".into())),
        }
    }
}

/// Query parameters with a clear 400 on bad input.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::BadRequest(format!(
                    "query: {}",
                    e.body_text()
                        .replace("Failed to deserialize query string: ", "")
                )))
            }
            Err(_) => Err(ApiError::BadRequest("query: invalid".into())),
        }
    }
}

/// Request facts for audit entries and session records.
pub struct Meta(pub RequestMeta);

impl FromRequestParts<AppState> for Meta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Meta(request_meta(&parts.extensions, &parts.headers, state)))
    }
}

/// The client IP of a request: the peer, or what a trusted proxy says (see
/// `trusted_proxies`).
pub fn request_ip(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Option<std::net::IpAddr> {
    let peer = extensions.get::<RequestContext>().and_then(|c| c.peer);
    client_ip(peer, headers, &state.trusted_proxies)
}

/// Request id (of the request this task handles), client IP (per `trusted_proxies`)
/// and user agent of a request.
pub fn request_meta(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> RequestMeta {
    let ip = request_ip(extensions, headers, state).map(|ip| ip.to_string());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    RequestMeta {
        request_id: crate::telemetry::request_id(),
        ip,
        user_agent: header(header::USER_AGENT.as_str()).map(|u| u.chars().take(512).collect()),
    }
}

/// What the frame learned about a request before the routes see it, in one request
/// extension (each extension is an allocation and a map entry).
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The connection's peer (`None` when served without a socket peer).
    pub peer: Option<SocketAddr>,
    pub tenant: Arc<Tenant>,
    /// When the request arrived (Unix milliseconds): one clock reading for the request.
    pub now: Millis,
}

/// What the frame learned about the request.
fn context(extensions: &axum::http::Extensions) -> Result<&RequestContext, ApiError> {
    extensions
        .get::<RequestContext>()
        .ok_or_else(|| ApiError::Internal("tenant not resolved".into()))
}

/// The tenant resolved by the frame.
pub struct CurrentTenant(pub Arc<Tenant>);

impl FromRequestParts<AppState> for CurrentTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        context(&parts.extensions).map(|c| CurrentTenant(c.tenant.clone()))
    }
}

/// The CSRF token bound to a session: a MAC of the session id, so it needs no storage and
/// changes whenever the session does.
pub fn csrf_token(key: &[u8], session: SessionId) -> String {
    b64url(&hmac_sha256(key, format!("csrf:{session}").as_bytes()))
}

/// Whether the request carries a bearer token rather than ambient credentials.
pub fn bearer_token(parts_headers: &axum::http::HeaderMap) -> Option<&str> {
    parts_headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn is_unsafe(m: &Method) -> bool {
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// An authenticated caller: session cookie first, then `Authorization: Bearer`.
/// Unsafe requests authenticated by cookie must carry the session's CSRF token.
/// The identity is shared (`Arc`) with the session cache: a check allocates nothing.
/// Nothing is kept on the request, so a handler takes it (or `Admin`, `SystemAdmin`)
/// once.
pub struct Authed(pub Arc<Identity>);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (tenant, now) = context(&parts.extensions).map(|c| (c.tenant.clone(), c.now))?;
        let (token, from_cookie) = match state.cookie.read(&parts.headers) {
            Some(t) => (t, true),
            None => match bearer_token(&parts.headers) {
                Some(t) => (t, false),
                None => return Err(ApiError::Unauthorized("authentication required".into())),
            },
        };
        let identity = state
            .sessions
            .authenticate(tenant.id, token, now)
            .await
            .map_err(ApiError::from)?;
        if from_cookie && is_unsafe(&parts.method) {
            let expected = csrf_token(&state.secret_key, identity.session_id);
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                tracing::warn!(target: "aegis::security", event = "csrf_failure", "CSRF token missing or invalid");
                metrics::counter!("aegis_csrf_failures_total", "check" => "token").increment(1);
                return Err(ApiError::Forbidden(
                    "CSRF token missing or invalid: send the token from GET /api/v1/csrf in the X-CSRF-Token header".into(),
                ));
            }
        }
        // A provider sign-in is a complete authentication: the provider's own second
        // factor stands in for ours (as identity brokering in Keycloak does).
        if identity.auth_method == AuthMethod::Password
            && tenant.mfa_policy.requires(identity.is_admin())
            && !ENROLLMENT_PATHS.contains(&parts.uri.path())
            && !state.mfa.is_enabled(tenant.id, identity.user_id).await?
        {
            return Err(ApiError::Forbidden(
                "MFA enrollment required by this tenant's policy: enroll with POST /api/v1/mfa/totp/enroll, then confirm"
                    .into(),
            ));
        }
        Ok(Authed(identity))
    }
}

/// What a user who must enroll in MFA may still reach: enrollment, and knowing who they
/// are and signing out.
const ENROLLMENT_PATHS: &[&str] = &[
    "/api/v1/session",
    "/api/v1/csrf",
    "/api/v1/logout",
    "/api/v1/mfa",
    "/api/v1/mfa/totp/enroll",
    "/api/v1/mfa/totp/confirm",
];

/// An authenticated tenant administrator.
pub struct Admin(pub Arc<Identity>);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authed(id) = Authed::from_request_parts(parts, state).await?;
        if !id.is_admin() {
            return Err(ApiError::Forbidden("requires the admin role".into()));
        }
        Ok(Admin(id))
    }
}

/// An administrator of the default (system) tenant, who manages tenants.
pub struct SystemAdmin(pub Arc<Identity>);

impl FromRequestParts<AppState> for SystemAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Admin(id) = Admin::from_request_parts(parts, state).await?;
        if id.tenant_id != state.default_tenant.id {
            return Err(ApiError::Forbidden(
                "requires the admin role in the default tenant".into(),
            ));
        }
        Ok(SystemAdmin(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_values_are_not_echoed() {
        let m =
            sanitize_serde_message("invalid type: string \"x\", expected u32 at line 1 column 3");
        assert!(m.contains("invalid type"));
        let m = sanitize_serde_message("invalid type: integer `12345678`, expected a string");
        assert!(!m.contains("12345678"));
    }
}

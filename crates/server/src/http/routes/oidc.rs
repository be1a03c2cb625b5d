//! Sign-in with an upstream OpenID Connect provider: the redirect to the provider, the
//! callback that creates the session (cookie only: no token ever travels in a URL),
//! the public provider list, and provider administration.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use aegis_core::oidc::{
    CallbackInput, ProviderInput, ProviderSettings, StartInput, flow_cookie_suffix,
};

use crate::config::Mode;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, ApiJson, ApiQuery, CurrentTenant, Meta};
use crate::http::state::AppState;
use crate::http::tenant::TenantPrefix;

/// Query of `GET /auth/oidc/{provider}/start`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    return_to: Option<String>,
    login_hint: Option<String>,
}

/// This server's callback URL for `provider`, as the browser reaches it: `public_url`,
/// or in development the request's own host; the tenant prefix is kept.
fn redirect_uri(state: &AppState, req: &Request, provider: &str) -> ApiResult<String> {
    let base = match &state.config.public_url {
        Some(url) => url.clone(),
        None if state.config.mode == Mode::Development => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    !h.is_empty()
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                })
                .ok_or_else(|| ApiError::BadRequest("missing or invalid Host header".into()))?;
            format!("http://{host}")
        }
        None => {
            return Err(ApiError::Unavailable(
                "sign-in with a provider needs public_url in production".into(),
            ));
        }
    };
    let prefix = req
        .extensions()
        .get::<TenantPrefix>()
        .map_or("", |p| p.0.as_str());
    Ok(format!("{base}{prefix}/auth/oidc/{provider}/callback"))
}

/// A `303 See Other` to `location`.
fn see_other(location: &str) -> ApiResult<Response> {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location)
            .map_err(|_| ApiError::Internal("redirect location is not a header value".into()))?,
    );
    Ok(resp)
}

/// `GET /auth/oidc/{provider}/start`: redirects to the provider with PKCE, state and
/// nonce; the flow cookie binds the sign-in to this browser.
pub async fn start(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    Path(provider): Path<String>,
    ApiQuery(query): ApiQuery<StartQuery>,
    req: Request,
) -> ApiResult<Response> {
    let redirect_uri = redirect_uri(&state, &req, &provider)?;
    let started = state
        .oidc
        .start(
            tenant.id,
            StartInput {
                provider: &provider,
                return_to: query.return_to.as_deref(),
                login_hint: query.login_hint.as_deref(),
                redirect_uri,
            },
            &meta,
        )
        .await?;
    let mut resp = see_other(&started.authorization_url)?;
    let cookie = state
        .cookie
        .flow_set(
            &started.cookie_suffix,
            started.binding.expose_secret(),
            started.max_age_secs,
        )
        .ok_or_else(|| ApiError::Internal("flow cookie encoding".into()))?;
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// `GET /auth/oidc/{provider}/callback`: checks the provider's answer, creates the
/// session cookie and sends the browser on to `return_to`. Providers add parameters of
/// their own (`session_state`, `scope`, ...), so unknown ones are ignored.
pub async fn callback(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    Path(provider): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let param = |k: &str| query.get(k).map(String::as_str);
    let suffix = param("state").map(flow_cookie_suffix);
    let input = CallbackInput {
        provider: &provider,
        state: param("state"),
        code: param("code"),
        error: param("error"),
        iss: param("iss"),
        binding: suffix
            .as_deref()
            .and_then(|s| state.cookie.flow_read(&headers, s)),
    };
    let outcome = state.oidc.callback(tenant.id, input, &meta).await;
    let mut resp = match outcome {
        Ok(signed_in) => match see_other(&signed_in.return_to).and_then(|mut r| {
            let cookie = state
                .cookie
                .set(signed_in.session.token.expose_secret())
                .ok_or_else(|| ApiError::Internal("cookie encoding".into()))?;
            r.headers_mut().append(header::SET_COOKIE, cookie);
            Ok(r)
        }) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Err(e) => ApiError::from(e).into_response(),
    };
    // The flow is over either way: its cookie goes.
    if let Some(clear) = suffix.as_deref().and_then(|s| state.cookie.flow_clear(s)) {
        resp.headers_mut().append(header::SET_COOKIE, clear);
    }
    resp
}

/// `GET /api/v1/oidc/providers`: the tenant's enabled providers, for sign-in pages.
pub async fn public_list(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
) -> ApiResult<Json<serde_json::Value>> {
    let providers = state.oidc.public_providers(tenant.id).await?;
    let list: Vec<_> = providers
        .into_iter()
        .map(|p| {
            json!({
                "start_url": format!("/auth/oidc/{}/start", p.name),
                "name": p.name,
                "display_name": p.display_name,
            })
        })
        .collect();
    Ok(Json(json!({ "providers": list })))
}

/// `GET /api/v1/admin/oidc/providers`
pub async fn admin_list(
    State(state): State<AppState>,
    Admin(who): Admin,
) -> ApiResult<Json<serde_json::Value>> {
    let providers = state.oidc.list_providers(who.tenant_id).await?;
    Ok(Json(json!({ "providers": providers })))
}

/// `PUT /api/v1/admin/oidc/providers/{name}`: creates (201) or replaces (200).
pub async fn admin_put(
    State(state): State<AppState>,
    Admin(who): Admin,
    Meta(meta): Meta,
    Path(name): Path<String>,
    ApiJson(settings): ApiJson<ProviderSettings>,
) -> ApiResult<Response> {
    let (view, created) = state
        .oidc
        .set_provider(
            who.tenant_id,
            ProviderInput { name, settings },
            Some(who.user_id),
            &meta,
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "provider": view }))).into_response())
}

/// `DELETE /api/v1/admin/oidc/providers/{name}`
pub async fn admin_delete(
    State(state): State<AppState>,
    Admin(who): Admin,
    Meta(meta): Meta,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .oidc
        .delete_provider(who.tenant_id, &name, Some(who.user_id), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Request middleware: tenant resolution (with `/t/{slug}` prefix rewriting), the
//! Origin / Sec-Fetch-Site check for unsafe methods, security headers, and error bodies
//! stamped with the request id.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestId, RequestId};

use aegis_core::model::Tenant;
use aegis_core::tenants::validate_slug;

use super::error::{ApiError, ErrorBody};
use super::extract::bearer_token;
use super::state::AppState;
use crate::config::Mode;

/// Request ids are UUIDv7: unique and sortable by time.
#[derive(Clone, Copy, Default)]
pub struct MakeUuidV7;

impl MakeRequestId for MakeUuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// The `/t/{slug}` prefix a request was addressed with (absent for host or default
/// tenant addressing): URLs Aegis hands out for the same tenant keep it.
#[derive(Clone, Debug)]
pub struct TenantPrefix(pub String);

/// Splits `/t/{slug}/rest` into `(slug, /rest)`.
fn split_tenant_prefix(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/t/")?;
    let (slug, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some((slug, tail))
}

async fn lookup(state: &AppState, key: String, by_host: bool) -> Result<Option<Tenant>, ApiError> {
    if let Some(hit) = state.tenant_cache.get(&key) {
        return Ok(hit);
    }
    let found = if by_host {
        state.store.tenant_by_host(&key[5..]).await?
    } else {
        state.store.tenant_by_slug(&key[5..]).await?
    };
    state.tenant_cache.put(key, found.clone());
    Ok(found)
}

/// Resolves the tenant from a `/t/{slug}` prefix, else the `Host` header, else the
/// default tenant, and strips the prefix so routes are the same for every tenant.
pub async fn resolve_tenant(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    match resolve(&state, &mut req).await {
        Ok(tenant) => {
            req.extensions_mut().insert(tenant);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn resolve(state: &AppState, req: &mut Request) -> Result<Tenant, ApiError> {
    let path = req.uri().path().to_string();
    let tenant = if let Some((slug, rest)) = split_tenant_prefix(&path) {
        validate_slug(slug).map_err(|_| ApiError::NotFound("tenant not found".into()))?;
        let t = lookup(state, format!("slug:{slug}"), false)
            .await?
            .ok_or_else(|| ApiError::NotFound("tenant not found".into()))?;
        let new_uri = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        *req.uri_mut() = new_uri
            .parse::<Uri>()
            .map_err(|_| ApiError::BadRequest("invalid path".into()))?;
        req.extensions_mut()
            .insert(TenantPrefix(format!("/t/{slug}")));
        t
    } else {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.to_ascii_lowercase());
        let by_host = match host {
            Some(h) => lookup(state, format!("host:{h}"), true).await?,
            None => None,
        };
        match by_host {
            Some(t) => t,
            // The default tenant is read through the cache too, so changes to it (its
            // MFA policy, say) take effect like those of any other tenant.
            None => lookup(state, format!("slug:{}", state.default_tenant.slug), false)
                .await?
                .unwrap_or_else(|| state.default_tenant.clone()),
        }
    };
    if tenant.disabled {
        return Err(ApiError::Forbidden("tenant is disabled".into()));
    }
    Ok(tenant)
}

fn is_unsafe(m: &Method) -> bool {
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Refuses unsafe requests from other origins. Requests with a bearer token and no
/// session cookie carry no ambient credentials and are exempt.
pub async fn check_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if is_unsafe(req.method()) && !origin_allowed(&state, &req) {
        tracing::warn!(target: "aegis::security", event = "csrf_failure", "cross-origin unsafe request refused");
        metrics::counter!("aegis_csrf_failures_total", "check" => "origin").increment(1);
        return ApiError::Forbidden(
            "cross-origin request refused: the Origin is not allowed".into(),
        )
        .into_response();
    }
    next.run(req).await
}

fn origin_allowed(state: &AppState, req: &Request) -> bool {
    let headers = req.headers();
    if bearer_token(headers).is_some() && state.cookie.read(headers).is_none() {
        return true;
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if state
            .config
            .cors
            .allowed_origins
            .iter()
            .any(|o| o == origin)
        {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        return matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h));
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site") | Some("same-site") => false,
        _ => true, // no browser signals: a non-browser client without ambient intent
    }
}

/// Security headers on every response.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(header::CACHE_CONTROL, "no-store");
    set(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if state.config.mode == Mode::Production {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
    resp
}

/// Rewrites error bodies to carry the request id.
pub async fn stamp_errors(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut resp = next.run(req).await;
    if let Some(mut body) = resp.extensions_mut().remove::<ErrorBody>() {
        body.request_id = request_id;
        if let Ok(bytes) = serde_json::to_vec(&body) {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            *resp.body_mut() = Body::from(bytes);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_prefix_split() {
        assert_eq!(
            split_tenant_prefix("/t/acme/api/v1/login"),
            Some(("acme", "/api/v1/login"))
        );
        assert_eq!(split_tenant_prefix("/t/acme"), Some(("acme", "/")));
        assert_eq!(split_tenant_prefix("/api/v1/login"), None);
    }
}

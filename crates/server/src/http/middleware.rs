//! The one middleware around the routes (`frame`): request ids, CORS, the request
//! timeout, admission (tenant resolution with `/t/{slug}` prefix rewriting, rate limits,
//! the Origin / Sec-Fetch-Site check for unsafe methods), security headers, and error
//! bodies stamped with the request id.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use aegis_core::model::Tenant;
use aegis_core::tenants::validate_slug;

use super::cors::Cors;
use super::error::{ApiError, ErrorBody};
use super::extract::bearer_token;
use super::ratelimit;
use super::state::{AppState, TenantKey};
use crate::config::Mode;

/// The header carrying the request id, in requests and answers.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh request id: a UUIDv7, unique and sortable by time.
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = request_uuid().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// A UUIDv7 whose random bits come from a per-thread generator seeded once from the
/// OS, not from a system call per request. Request ids must be unique, not secret.
fn request_uuid() -> uuid::Uuid {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            // A failed read leaves a fixed seed: ids stay unique per thread through
            // the timestamp and counter, only less spread.
            let _ = getrandom::fill(&mut seed);
            u64::from_le_bytes(seed) | 1
        });
    }
    // splitmix64: a full-period sequence, so two calls on one thread never repeat.
    let next = |s: &Cell<u64>| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (a, b) = STATE.with(|s| (next(s), next(s)));
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    let millis = u64::try_from(aegis_core::clock::now_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
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

async fn lookup(
    state: &AppState,
    kind: TenantKey,
    name: &str,
) -> Result<Option<Arc<Tenant>>, ApiError> {
    if let Some(hit) = state.tenant_cache.get(kind, name) {
        return Ok(hit);
    }
    let found = match kind {
        TenantKey::Host => state.store.tenant_by_host(name).await?,
        TenantKey::Slug => state.store.tenant_by_slug(name).await?,
    }
    .map(Arc::new);
    state.tenant_cache.put(kind, name, found.clone());
    Ok(found)
}

/// Admission, in order: the tenant (from a `/t/{slug}` prefix, else the `Host` header,
/// else the default tenant; the prefix is stripped so routes are the same for every
/// tenant), the rate limits (whose keys may name the tenant), then the origin check of
/// unsafe methods; then the routes.
async fn admit(state: &AppState, mut req: Request, next: Next) -> Response {
    match resolve(state, &mut req).await {
        Ok(tenant) => req.extensions_mut().insert(tenant),
        Err(e) => return e.into_response(),
    };
    let (req, limit_headers) = match ratelimit::admit(state, req).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let mut resp = if is_unsafe(req.method()) && !origin_allowed(state, &req) {
        tracing::warn!(target: "aegis::security", event = "csrf_failure", "cross-origin unsafe request refused");
        metrics::counter!("aegis_csrf_failures_total", "check" => "origin").increment(1);
        ApiError::Forbidden("cross-origin request refused: the Origin is not allowed".into())
            .into_response()
    } else {
        next.run(req).await
    };
    // Room for the headers still to come (rate limits, CORS, request id, security), so
    // the map grows once.
    resp.headers_mut().reserve(24);
    if let Some(h) = limit_headers {
        h.apply(resp.headers_mut());
    }
    resp
}

async fn resolve(state: &AppState, req: &mut Request) -> Result<Arc<Tenant>, ApiError> {
    let tenant = if let Some((slug, rest)) = split_tenant_prefix(req.uri().path()) {
        validate_slug(slug).map_err(|_| ApiError::NotFound("tenant not found".into()))?;
        let prefix = format!("/t/{slug}");
        let new_uri = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        let t = lookup(state, TenantKey::Slug, &prefix[3..])
            .await?
            .ok_or_else(|| ApiError::NotFound("tenant not found".into()))?;
        *req.uri_mut() = new_uri
            .parse::<Uri>()
            .map_err(|_| ApiError::BadRequest("invalid path".into()))?;
        req.extensions_mut().insert(TenantPrefix(prefix));
        t
    } else {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let by_host = match host {
            // Host names are matched in lower case; most clients already send them so.
            Some(h) if h.bytes().any(|b| b.is_ascii_uppercase()) => {
                lookup(state, TenantKey::Host, &h.to_ascii_lowercase()).await?
            }
            Some(h) => lookup(state, TenantKey::Host, h).await?,
            None => None,
        };
        match by_host {
            Some(t) => t,
            // The default tenant is read through the cache too, so changes to it (its
            // MFA policy, say) take effect like those of any other tenant.
            None => match lookup(state, TenantKey::Slug, &state.default_tenant.slug).await? {
                Some(t) => t,
                None => Arc::new(state.default_tenant.clone()),
            },
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

/// Whether an unsafe request may proceed: from an allowed or the same origin, or
/// without ambient credentials. Requests with a bearer token and no session cookie are
/// exempt.
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

/// Headers every response carries (unless a handler set its own).
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (header::CACHE_CONTROL, "no-store"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// Request headers that carry credentials: marked sensitive, so any debug output of a
/// request shows them as `Sensitive`.
const SENSITIVE_REQUEST_HEADERS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    HeaderName::from_static("x-csrf-token"),
];

fn mark_sensitive(headers: &mut axum::http::HeaderMap, names: &[HeaderName]) {
    for name in names {
        if let axum::http::header::Entry::Occupied(mut entry) = headers.entry(name) {
            for value in entry.iter_mut() {
                value.set_sensitive(true);
            }
        }
    }
}

/// The one middleware around the routes: credential headers marked sensitive, the
/// request id (the client's, or a new one) on the request, the answer and the log span,
/// CORS (preflights answered here), the request timeout, admission (tenant, rate
/// limits, origin check), then on the way out the rate-limit and CORS headers, the
/// request id in error bodies and the security headers. One middleware rather than
/// the ten layers it replaces: each layer cost every request a boxed future and a clone
/// of the whole stack below it.
pub async fn frame(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    mark_sensitive(req.headers_mut(), &SENSITIVE_REQUEST_HEADERS);
    let request_id = match req.headers().get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = new_request_id();
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    let mut resp = if Cors::is_preflight(req.method(), req.headers()) {
        let mut resp = axum::http::StatusCode::OK.into_response();
        state.cors.preflight(req.headers(), resp.headers_mut());
        resp
    } else {
        let origin = req.headers().get(header::ORIGIN).cloned();
        // Every log line of the request carries its id. Only the id: the subscriber
        // formats span fields eagerly on every request (method and path doubled the
        // cost of the span in the profile).
        let span = tracing::info_span!("request", request_id = %request_id.to_str().unwrap_or(""));
        let limit = Duration::from_secs(state.config.http.request_timeout_secs);
        let mut resp =
            match tokio::time::timeout(limit, admit(&state, req, next).instrument(span)).await {
                Ok(resp) => resp,
                Err(_) => axum::http::StatusCode::REQUEST_TIMEOUT.into_response(),
            };
        state.cors.decorate(origin.as_ref(), resp.headers_mut());
        resp
    };
    if let Some(mut body) = resp.extensions_mut().remove::<ErrorBody>() {
        body.request_id = request_id.to_str().ok().map(str::to_string);
        if let Ok(bytes) = serde_json::to_vec(&body) {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            *resp.body_mut() = Body::from(bytes);
        }
    }
    let h = resp.headers_mut();
    mark_sensitive(h, &[header::SET_COOKIE]);
    h.entry(X_REQUEST_ID).or_insert(request_id);
    for (name, value) in SECURITY_HEADERS {
        h.entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    if state.config.mode == Mode::Production {
        h.entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_v7() {
        let a = request_uuid();
        let b = request_uuid();
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
    }

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

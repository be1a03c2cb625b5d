//! The one middleware around the routes ([`Frame`]): request ids, CORS, the request
//! timeout, admission (tenant resolution with `/t/{slug}` prefix rewriting, rate limits,
//! the Origin / Sec-Fetch-Site check for unsafe methods), security headers, and error
//! bodies stamped with the request id.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use tower::{Service, ServiceExt};

use aegis_core::model::Tenant;
use aegis_core::tenants::validate_slug;

use super::answer_headers;
use super::cors::Cors;
use super::error::{ApiError, ErrorBody};
use super::extract::{CSRF_HEADER, bearer_token};
use super::ratelimit::{self, LimitHeaders};
use super::state::{AppState, TenantKey};
use crate::telemetry;

/// The header carrying the request id, in requests and answers.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client.
const MAX_CLIENT_REQUEST_ID: usize = 128;

/// Whether a client's `X-Request-Id` is kept: up to 128 letters, digits and `-_.:`.
/// Anything else is replaced by a fresh id, so what ends up in logs, audit entries and
/// error bodies is short and cannot pose as log syntax.
fn acceptable_request_id(id: &HeaderValue) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_CLIENT_REQUEST_ID
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// A fresh request id: a UUIDv7, unique and sortable by time. Its text lives in one
/// allocation that every copy shares (task, answer, error body).
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    request_uuid().hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(Bytes::from_owner(text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
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

/// The tenant named `name` (a slug), through the tenant cache.
async fn by_slug(state: &AppState, name: &str) -> Result<Option<Arc<Tenant>>, ApiError> {
    if let Some(hit) = state.tenant_cache.get(TenantKey::Slug, name) {
        return Ok(hit);
    }
    let found = state.store.tenant_by_slug(name).await?.map(Arc::new);
    state.tenant_cache.put(TenantKey::Slug, name, found.clone());
    Ok(found)
}

/// The tenant a `Host` names, else the default tenant, through the tenant cache: the
/// cache keeps what the host resolved to, so a host that names no tenant (the usual
/// single-tenant install) costs one lookup per request, not two. The default tenant is
/// read through the cache too, so changes to it (its MFA policy, say) take effect like
/// those of any other tenant.
async fn by_host(state: &AppState, host: &str) -> Result<Arc<Tenant>, ApiError> {
    if let Some(Some(hit)) = state.tenant_cache.get(TenantKey::Host, host) {
        return Ok(hit);
    }
    let tenant = match state.store.tenant_by_host(host).await? {
        Some(t) => Arc::new(t),
        None => default_tenant(state).await?,
    };
    state
        .tenant_cache
        .put(TenantKey::Host, host, Some(tenant.clone()));
    Ok(tenant)
}

async fn default_tenant(state: &AppState) -> Result<Arc<Tenant>, ApiError> {
    Ok(by_slug(state, &state.default_tenant.slug)
        .await?
        .unwrap_or_else(|| Arc::new(state.default_tenant.clone())))
}

/// Admission, in order: the tenant (from a `/t/{slug}` prefix, else the `Host` header,
/// else the default tenant; the prefix is stripped so routes are the same for every
/// tenant), the rate limits (whose keys may name the tenant), then the origin check of
/// unsafe methods; then the routes. The answer comes with the rate-limit headers to add
/// to it, if a rule applied and admitted the request.
async fn admit<S: Routes>(
    state: &AppState,
    mut req: Request,
    routes: S,
) -> (Response, Option<LimitHeaders>) {
    match resolve(state, &mut req).await {
        Ok(tenant) => req.extensions_mut().insert(tenant),
        Err(e) => return (e.into_response(), None),
    };
    let (req, limit_headers) = match ratelimit::admit(state, req).await {
        Ok(admitted) => admitted,
        Err(refused) => return (refused, None),
    };
    let resp = if is_unsafe(req.method()) && !origin_allowed(state, &req) {
        tracing::warn!(target: "aegis::security", event = "csrf_failure", "cross-origin unsafe request refused");
        metrics::counter!("aegis_csrf_failures_total", "check" => "origin").increment(1);
        ApiError::Forbidden("cross-origin request refused: the Origin is not allowed".into())
            .into_response()
    } else {
        match routes.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    };
    (resp, limit_headers)
}

async fn resolve(state: &AppState, req: &mut Request) -> Result<Arc<Tenant>, ApiError> {
    let tenant = if let Some((slug, rest)) = split_tenant_prefix(req.uri().path()) {
        validate_slug(slug).map_err(|_| ApiError::NotFound("tenant not found".into()))?;
        let prefix = format!("/t/{slug}");
        let new_uri = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        let t = by_slug(state, &prefix[3..])
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
        match host {
            // Host names are matched in lower case; most clients already send them so.
            Some(h) if h.bytes().any(|b| b.is_ascii_uppercase()) => {
                by_host(state, &h.to_ascii_lowercase()).await?
            }
            Some(h) => by_host(state, h).await?,
            None => default_tenant(state).await?,
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

/// Request headers that carry credentials: marked sensitive, so any debug output of a
/// request shows them as `Sensitive`. One pass over the request's headers (a lookup per
/// name hashed each name for every request).
fn mark_request_sensitive(headers: &mut axum::http::HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if *name == header::AUTHORIZATION || *name == header::COOKIE || *name == CSRF_HEADER {
            value.set_sensitive(true);
        }
    }
}

/// The one middleware around the routes, as a service wrapping the router: credential
/// headers marked sensitive, the request id (the client's, or a new one) on the
/// request, the answer and every log line of the request, CORS (preflights answered
/// here), the request timeout, admission (tenant, rate limits, origin check), then on
/// the way out the rate-limit and CORS headers, the request id in error bodies and the
/// security headers. Written as a plain service rather than the layers it replaces
/// (or axum's `from_fn`): each layer cost every request a boxed future and a clone of
/// the whole stack below it.
#[derive(Clone)]
pub struct Frame<S> {
    state: AppState,
    routes: S,
}

/// What the frame wraps: the router (with its body limit).
pub trait Routes:
    Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
{
}

impl<S> Routes for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

impl<S: Routes> Frame<S> {
    pub fn new(state: AppState, routes: S) -> Frame<S> {
        Frame { state, routes }
    }
}

impl<S: Routes> Service<Request> for Frame<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Box::pin(frame(self.state.clone(), req, self.routes.clone()))
    }
}

/// The frame's work for one request (see [`Frame`]). Never fails: every error is an
/// answer.
async fn frame<S: Routes>(
    state: AppState,
    mut req: Request,
    routes: S,
) -> Result<Response, Infallible> {
    mark_request_sensitive(req.headers_mut());
    // Handlers read the id from the task (`telemetry::request_id`), not from the
    // request, so a client's unusable id needs no rewriting there.
    let request_id = match req.headers().get(X_REQUEST_ID) {
        Some(id) if acceptable_request_id(id) => id.clone(),
        _ => new_request_id(),
    };
    let (mut resp, mut answer) = if Cors::is_preflight(req.method(), req.headers()) {
        let mut answer = state.answer_headers.start(None);
        state.cors.preflight(req.headers(), &mut answer);
        (axum::http::StatusCode::OK.into_response(), answer)
    } else {
        let origin = match state.cors.enabled() {
            true => req.headers().get(header::ORIGIN).cloned(),
            false => None,
        };
        let limit = Duration::from_secs(state.config.http.request_timeout_secs);
        // Every log line of the request carries its id (see `telemetry`).
        // Boxed: the admission future is large, and is moved into the task-local scope
        // and then into the timeout; moving a pointer instead costs less than the
        // allocation.
        let admitted = Box::pin(admit(&state, req, routes));
        let handled = telemetry::with_request_id(request_id.clone(), admitted);
        let (resp, limit_headers) = match tokio::time::timeout(limit, handled).await {
            Ok(answered) => answered,
            Err(_) => (
                axum::http::StatusCode::REQUEST_TIMEOUT.into_response(),
                None,
            ),
        };
        let mut answer = state
            .answer_headers
            .start(limit_headers.as_ref().map(|h| h.rule));
        if let Some(h) = limit_headers {
            h.apply_changing(&mut answer);
        }
        state.cors.decorate(origin.as_ref(), &mut answer);
        (resp, answer)
    };
    if let Some(mut body) = resp.extensions_mut().remove::<ErrorBody>() {
        body.request_id = request_id.to_str().ok().map(str::to_string);
        if let Ok(bytes) = serde_json::to_vec(&body) {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            *resp.body_mut() = Body::from(bytes);
        }
    }
    answer.insert(X_REQUEST_ID, request_id);
    let handler = std::mem::take(resp.headers_mut());
    answer_headers::merge(&mut answer, handler);
    *resp.headers_mut() = answer;
    Ok(resp)
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
    fn client_request_ids_are_kept_only_when_plain() {
        let ok = |s: &str| acceptable_request_id(&HeaderValue::from_str(s).unwrap());
        assert!(ok("fixed-id-for-comparison"));
        assert!(ok("0a1B.2c:3_d"));
        assert!(!ok(""));
        assert!(!ok("has space"));
        assert!(!ok("quote\"d"));
        assert!(!ok("a=b"));
        assert!(ok(&"x".repeat(128)));
        assert!(!ok(&"x".repeat(129)));
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

//! Which tenant a request is for: a `/t/{slug}` prefix, the `Host` header, or the
//! default tenant, looked up through the tenant cache.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Uri, header};

use aegis_core::clock::Millis;
use aegis_core::model::Tenant;
use aegis_core::tenants::validate_slug;

use super::error::ApiError;
use super::state::{AppState, TenantKey};

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
async fn by_slug(
    state: &AppState,
    name: &str,
    now: Millis,
) -> Result<Option<Arc<Tenant>>, ApiError> {
    if let Some(hit) = state.tenant_cache.get(TenantKey::Slug, name, now) {
        return Ok(hit);
    }
    let found = state.store.tenant_by_slug(name).await?.map(Arc::new);
    state
        .tenant_cache
        .put(TenantKey::Slug, name, found.clone(), now);
    Ok(found)
}

/// The tenant a `Host` names, else the default tenant, through the tenant cache: the
/// cache keeps what the host resolved to, so a host that names no tenant (the usual
/// single-tenant install) costs one lookup per request, not two. The default tenant is
/// read through the cache too, so changes to it (its MFA policy, say) take effect like
/// those of any other tenant.
async fn by_host(state: &AppState, host: &str, now: Millis) -> Result<Arc<Tenant>, ApiError> {
    if let Some(Some(hit)) = state.tenant_cache.get(TenantKey::Host, host, now) {
        return Ok(hit);
    }
    let tenant = match state.store.tenant_by_host(host).await? {
        Some(t) => Arc::new(t),
        None => default_tenant(state, now).await?,
    };
    state
        .tenant_cache
        .put(TenantKey::Host, host, Some(tenant.clone()), now);
    Ok(tenant)
}

async fn default_tenant(state: &AppState, now: Millis) -> Result<Arc<Tenant>, ApiError> {
    Ok(by_slug(state, &state.default_tenant.slug, now)
        .await?
        .unwrap_or_else(|| Arc::new(state.default_tenant.clone())))
}

/// The tenant of a request arriving at `now` (Unix milliseconds): from a `/t/{slug}`
/// prefix (which is stripped, so routes are the same for every tenant, and kept as a
/// [`TenantPrefix`] extension), else the `Host` header, else the default tenant. A
/// disabled tenant is refused.
///
/// The usual request, addressed by a host the tenant cache knows, is answered without
/// waiting; only the rest makes (and boxes) the future of [`lookup`]: it is part of
/// every request's future, and whatever it holds inline is moved with it.
pub async fn resolve(
    state: &AppState,
    req: &mut Request,
    now: Millis,
) -> Result<Arc<Tenant>, ApiError> {
    match cached(state, req, now) {
        Some(tenant) => admitted(tenant),
        None => Box::pin(lookup(state, req, now)).await,
    }
}

/// The tenant of a request without a `/t/{slug}` prefix whose (lower-case) host the
/// tenant cache holds.
fn cached(state: &AppState, req: &Request, now: Millis) -> Option<Arc<Tenant>> {
    if split_tenant_prefix(req.uri().path()).is_some() {
        return None;
    }
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    state.tenant_cache.get(TenantKey::Host, host, now).flatten()
}

fn admitted(tenant: Arc<Tenant>) -> Result<Arc<Tenant>, ApiError> {
    if tenant.disabled {
        return Err(ApiError::Forbidden("tenant is disabled".into()));
    }
    Ok(tenant)
}

/// [`resolve`], through the tenant cache and, on a miss, the tenant registry.
async fn lookup(state: &AppState, req: &mut Request, now: Millis) -> Result<Arc<Tenant>, ApiError> {
    let tenant = if let Some((slug, rest)) = split_tenant_prefix(req.uri().path()) {
        validate_slug(slug).map_err(|_| ApiError::NotFound("tenant not found".into()))?;
        let prefix = format!("/t/{slug}");
        let new_uri = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        let t = by_slug(state, &prefix[3..], now)
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
                by_host(state, &h.to_ascii_lowercase(), now).await?
            }
            Some(h) => by_host(state, h, now).await?,
            None => default_tenant(state, now).await?,
        }
    };
    admitted(tenant)
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

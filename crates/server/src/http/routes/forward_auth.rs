//! The forward-auth check for reverse proxies (nginx `auth_request`, Traefik
//! `ForwardAuth`, Caddy `forward_auth`): 200 with the identity in response headers the
//! proxy copies to the upstream request, or 401/403 with Aegis's usual error body.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::http::extract::{Authed, CurrentTenant};

/// Headers of a successful check.
pub const USER_ID: HeaderName = HeaderName::from_static("x-aegis-user-id");
pub const EMAIL: HeaderName = HeaderName::from_static("x-aegis-email");
pub const ROLES: HeaderName = HeaderName::from_static("x-aegis-roles");
pub const TENANT: HeaderName = HeaderName::from_static("x-aegis-tenant");
pub const AUTH_METHOD: HeaderName = HeaderName::from_static("x-aegis-auth-method");

/// `GET /api/v1/forward-auth` (and HEAD): proxies send it before every request they
/// pass on, with the original request's cookies or `Authorization` header.
pub async fn check(
    CurrentTenant(tenant): CurrentTenant,
    Authed(who): Authed,
) -> (StatusCode, HeaderMap) {
    let mut h = HeaderMap::with_capacity(5);
    let mut put = |name: HeaderName, value: &str| {
        // Addresses and slugs are validated printable text; anything a header cannot
        // carry is left out rather than sent mangled.
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(USER_ID, &who.user_id.to_string());
    put(EMAIL, &who.email);
    put(ROLES, &who.roles.join(","));
    put(TENANT, &tenant.slug);
    put(AUTH_METHOD, who.auth_method.as_str());
    (StatusCode::OK, h)
}

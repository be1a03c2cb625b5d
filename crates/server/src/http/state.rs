//! Shared application state handed to every handler.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use aegis_core::accounts::AccountService;
use aegis_core::clock::Millis;
use aegis_core::fieldcrypt::KeyRing;
use aegis_core::mfa::MfaService;
use aegis_core::model::Tenant;
use aegis_core::oidc::OidcService;
use aegis_core::recovery::RecoveryService;
use aegis_core::sessions::SessionService;
use aegis_core::store::Store;
use aegis_core::tenants::TenantService;
use ipnet::IpNet;

use super::answer_headers::AnswerHeaders;
use super::cookie::CookieSettings;
use super::cors::Cors;
use super::ratelimit::AuditThrottle;
use crate::config::Config;
use crate::ratelimit::RateLimiter;
use metrics_exporter_prometheus::PrometheusHandle;

/// How long a tenant lookup is cached (tenant changes propagate within this time).
const TENANT_CACHE_TTL_MS: Millis = 5_000;

/// Everything a request needs, behind one `Arc`: axum clones the state for every
/// middleware and extractor of every request, and one reference count is much cheaper
/// than one per service (the profile of a session check showed those clones and drops
/// at a fifth of the server's time).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The services, settings and caches shared by all requests.
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub accounts: AccountService,
    pub mfa: MfaService,
    pub recovery: RecoveryService,
    /// Sign-in with upstream OpenID Connect providers.
    pub oidc: OidcService,
    /// Field encryption keys (TOTP secrets).
    pub keys: Arc<KeyRing>,
    pub sessions: SessionService,
    pub tenants: TenantService,
    pub default_tenant: Tenant,
    /// Key for CSRF token MACs.
    pub secret_key: Arc<[u8]>,
    pub cookie: CookieSettings,
    pub cors: Cors,
    /// The security headers every answer starts with.
    pub answer_headers: AnswerHeaders,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub tenant_cache: TenantCache,
    /// `None` when `rate_limit.enabled = false`.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Keeps refused-request audit entries to one per rule, key and window.
    pub limit_audit: Arc<AuditThrottle>,
    /// The Prometheus registry, installed by `serve` (CLI commands have none).
    pub metrics: OnceLock<PrometheusHandle>,
    /// Who may read `/metrics`.
    pub metrics_allow: Arc<Vec<IpNet>>,
}

/// How a tenant was addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantKey {
    Slug,
    Host,
}

/// A short-lived cache of tenant lookups by slug or host, so the tenant registry is not
/// queried on every request. A hit allocates nothing: the maps are searched with the
/// borrowed name and the tenant is shared. Times are the request's own clock reading
/// (Unix milliseconds), so a lookup reads no clock of its own.
#[derive(Clone, Default)]
pub struct TenantCache {
    by_slug: Arc<RwLock<HashMap<String, CachedTenant>>>,
    by_host: Arc<RwLock<HashMap<String, CachedTenant>>>,
}

/// When a lookup was made and what it found (`None`: no such tenant).
type CachedTenant = (Millis, Option<Arc<Tenant>>);

/// Most names remembered per map; the map is cleared when it grows beyond.
const TENANT_CACHE_MAX: usize = 10_000;

impl TenantCache {
    fn map(&self, kind: TenantKey) -> &RwLock<HashMap<String, CachedTenant>> {
        match kind {
            TenantKey::Slug => &self.by_slug,
            TenantKey::Host => &self.by_host,
        }
    }

    /// A cached lookup, if fresh at `now`. An entry from the future (the clock went
    /// back) is not fresh.
    pub fn get(&self, kind: TenantKey, name: &str, now: Millis) -> Option<Option<Arc<Tenant>>> {
        let map = self.map(kind).read().ok()?;
        let (at, t) = map.get(name)?;
        (*at <= now && now - *at < TENANT_CACHE_TTL_MS).then(|| t.clone())
    }

    /// Remembers a lookup made at `now` (bounded: the cache is cleared when it grows
    /// large).
    pub fn put(&self, kind: TenantKey, name: &str, tenant: Option<Arc<Tenant>>, now: Millis) {
        if let Ok(mut map) = self.map(kind).write() {
            if map.len() > TENANT_CACHE_MAX {
                map.clear();
            }
            map.insert(name.to_string(), (now, tenant));
        }
    }

    /// Forgets everything (after a tenant change on this instance).
    pub fn clear(&self) {
        for map in [&self.by_slug, &self.by_host] {
            if let Ok(mut map) = map.write() {
                map.clear();
            }
        }
    }
}

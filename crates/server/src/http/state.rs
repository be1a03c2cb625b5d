//! Shared application state handed to every handler.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aegis_core::accounts::AccountService;
use aegis_core::fieldcrypt::KeyRing;
use aegis_core::mfa::MfaService;
use aegis_core::model::Tenant;
use aegis_core::oidc::OidcService;
use aegis_core::recovery::RecoveryService;
use aegis_core::sessions::SessionService;
use aegis_core::store::Store;
use aegis_core::tenants::TenantService;
use ipnet::IpNet;

use super::cookie::CookieSettings;
use super::ratelimit::AuditThrottle;
use crate::config::Config;
use crate::ratelimit::RateLimiter;
use metrics_exporter_prometheus::PrometheusHandle;

/// How long a tenant lookup is cached (tenant changes propagate within this time).
const TENANT_CACHE_TTL: Duration = Duration::from_secs(5);

/// Everything a request needs.
#[derive(Clone)]
pub struct AppState {
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
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub tenant_cache: TenantCache,
    /// `None` when `rate_limit.enabled = false`.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Keeps refused-request audit entries to one per rule, key and window.
    pub limit_audit: Arc<AuditThrottle>,
    /// The Prometheus registry, installed by `serve` (CLI commands have none).
    pub metrics: Option<PrometheusHandle>,
    /// Who may read `/metrics`.
    pub metrics_allow: Arc<Vec<IpNet>>,
}

/// A short-lived cache of tenant lookups by slug or host, so the tenant registry is not
/// queried on every request.
#[derive(Clone, Default)]
pub struct TenantCache {
    entries: Arc<RwLock<HashMap<String, CachedTenant>>>,
}

/// When a lookup was made and what it found (`None`: no such tenant).
type CachedTenant = (Instant, Option<Tenant>);

impl TenantCache {
    /// A cached lookup, if fresh.
    pub fn get(&self, key: &str) -> Option<Option<Tenant>> {
        let map = self.entries.read().ok()?;
        let (at, t) = map.get(key)?;
        (at.elapsed() < TENANT_CACHE_TTL).then(|| t.clone())
    }

    /// Remembers a lookup (bounded: the cache is cleared when it grows large).
    pub fn put(&self, key: String, tenant: Option<Tenant>) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() > 10_000 {
                map.clear();
            }
            map.insert(key, (Instant::now(), tenant));
        }
    }

    /// Forgets everything (after a tenant change on this instance).
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }
}

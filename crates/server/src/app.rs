//! Start-up: connect and migrate the store, build services and state, run background
//! tasks, serve.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aegis_core::accounts::{AccountService, LockoutPolicy};
use aegis_core::fieldcrypt::KeyRing;
use aegis_core::mfa::MfaService;
use aegis_core::oidc::{OidcConfig, OidcService};
use aegis_core::password::{PasswordHasher, PasswordPolicy};
use aegis_core::recovery::RecoveryService;
use aegis_core::session_cache::SessionCache;
use aegis_core::sessions::{SessionPolicy, SessionService};
use aegis_core::store::Store;
use aegis_core::tenants::TenantService;
use aegis_store::{Backend, ConnectOptions};
use anyhow::{Context, bail};

use crate::config::{Config, Mode, parse_cidr};
use crate::http::answer_headers::AnswerHeaders;
use crate::http::cookie::CookieSettings;
use crate::http::cors::Cors;
use crate::http::state::{AppState, Shared, TenantCache};
use crate::oidc::HttpIdpClient;
use crate::ratelimit::RateLimiter;

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The session policy the configuration describes.
pub fn session_policy(cfg: &Config) -> SessionPolicy {
    SessionPolicy {
        absolute_lifetime_ms: secs_ms(cfg.session.absolute_lifetime_secs),
        idle_timeout_ms: secs_ms(cfg.session.idle_timeout_secs),
        activity_update_interval_ms: secs_ms(cfg.session.activity_update_interval_secs),
    }
}

/// Opens the store, migrating first when configured to.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if cfg.migrate_on_start {
        let owner = cfg
            .database_owner_url
            .as_ref()
            .map_or(cfg.database_url.as_str(), |s| s.0.as_str());
        let applied = aegis_store::migrate(owner, &cfg.database_url)
            .await
            .context("running migrations")?;
        for m in applied {
            tracing::info!(migration = %m, "applied migration");
        }
    }
    let opts = ConnectOptions {
        max_connections: cfg.database_max_connections,
        ..ConnectOptions::default()
    };
    let store = aegis_store::open(&cfg.database_url, &opts)
        .await
        .context("connecting to the database")?;
    if Backend::of_url(&cfg.database_url)? == Backend::Postgres {
        let pg = aegis_store::postgres::PgStore::connect(&cfg.database_url, &opts).await?;
        let facts = pg.role_facts().await?;
        pg.pool().close().await;
        if facts.superuser || facts.bypass_rls {
            let msg = format!(
                "database_url: role '{}' is a superuser or has BYPASSRLS, so row-level security cannot isolate tenants; connect as a plain application role",
                facts.name
            );
            if cfg.mode == Mode::Production {
                bail!(msg);
            }
            tracing::warn!("{msg}");
        }
    }
    Ok(store)
}

/// The field-encryption key ring: the configured keys, or in development without any,
/// one derived from `secret_key` (so enrollments survive restarts), or a random one.
fn key_ring(cfg: &Config, secret_key: &[u8]) -> anyhow::Result<KeyRing> {
    if let Some(ring) = cfg.encryption.key_ring().map_err(anyhow::Error::msg)? {
        return Ok(ring);
    }
    let derived =
        aegis_core::crypto::hmac_sha256(secret_key, b"aegis field encryption (development)");
    if cfg.secret_key.is_none() {
        tracing::warn!(
            "no encryption.keys and no secret_key: TOTP enrollments will not survive a restart; run `aegis secrets generate`"
        );
    }
    let encoded = aegis_core::crypto::b64url(&derived);
    Ok(KeyRing::new([("dev", encoded.as_str())], "dev")?)
}

/// SMTP when configured, else the development mail folder.
fn mailer(cfg: &Config) -> anyhow::Result<Arc<dyn aegis_core::mail::Mailer>> {
    let m = &cfg.mail;
    Ok(match &m.smtp_url {
        Some(url) => Arc::new(
            crate::mail::SmtpMailer::new(
                &url.0,
                m.from.clone(),
                Duration::from_secs(m.timeout_secs.max(1)),
                crate::mail::CircuitBreaker::new(
                    m.breaker_failures,
                    Duration::from_secs(m.breaker_open_secs),
                ),
            )
            .map_err(anyhow::Error::msg)?,
        ),
        None => Arc::new(crate::mail::FileMailer::new(m.dir.clone(), m.from.clone())),
    })
}

/// Sign-in with upstream providers, calling them through the HTTP client.
fn oidc_service(
    cfg: &Config,
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    accounts: AccountService,
) -> anyhow::Result<OidcService> {
    let development = cfg.mode == Mode::Development;
    let client = HttpIdpClient::new(&cfg.oidc, development).map_err(anyhow::Error::msg)?;
    Ok(OidcService::new(
        store,
        keys,
        Arc::new(client),
        accounts,
        OidcConfig {
            allow_http: development,
            state_ttl_ms: secs_ms(cfg.oidc.state_ttl_secs),
            clock_skew_secs: cfg.oidc.clock_skew_secs,
            return_to_origins: cfg.oidc.return_to_origins.clone(),
        },
    ))
}

/// Builds the application state.
pub async fn build_state(cfg: Config) -> anyhow::Result<AppState> {
    let store = open_store(&cfg).await?;
    let secret_key: Arc<[u8]> = match &cfg.secret_key {
        Some(k) => k.0.as_bytes().into(),
        None => {
            tracing::warn!(
                "no secret_key configured: using a random one for this process (CSRF tokens will not survive a restart); run `aegis secrets generate`"
            );
            aegis_core::crypto::random_bytes::<32>()?.to_vec().into()
        }
    };
    let concurrency = match cfg.password.hash_concurrency {
        0 => PasswordHasher::default_concurrency(),
        n => n,
    };
    let hasher = PasswordHasher::new(concurrency, cfg.password.hash_queue)?
        .with_refusal_delay(Duration::from_millis(cfg.password.busy_delay_ms));
    let policy = session_policy(&cfg);
    let session_cache = Arc::new(SessionCache::new(
        secs_ms(cfg.session.cache_ttl_secs),
        cfg.session.cache_capacity,
    ));
    let accounts = AccountService::new(
        store.clone(),
        hasher,
        PasswordPolicy {
            min_length: cfg.password.min_length,
            max_length: cfg.password.max_length,
            min_strength: cfg.password.min_strength,
        },
        LockoutPolicy {
            threshold: cfg.lockout.threshold,
            base_ms: secs_ms(cfg.lockout.base_secs),
            max_ms: secs_ms(cfg.lockout.max_secs),
            known_ip_bypass: cfg.lockout.known_ip_bypass,
        },
        policy.clone(),
        session_cache.clone(),
    );
    let keys = Arc::new(key_ring(&cfg, &secret_key)?);
    let mfa = MfaService::new(
        store.clone(),
        keys.clone(),
        secret_key.clone(),
        cfg.mfa.issuer.clone(),
        accounts.clone(),
    );
    let recovery = RecoveryService::new(store.clone(), accounts.clone(), mailer(&cfg)?);
    let oidc = oidc_service(&cfg, store.clone(), keys.clone(), accounts.clone())?;
    let tenants = TenantService::new(store.clone());
    let default_tenant = tenants.ensure_default().await?;
    let trusted_proxies = cfg
        .trusted_proxies
        .iter()
        .filter_map(|c| parse_cidr(c))
        .collect();
    let metrics_allow = cfg
        .metrics
        .allow_from
        .iter()
        .filter_map(|c| parse_cidr(c))
        .collect();
    let limiter = if cfg.rate_limit.enabled {
        let redis_url = cfg.redis_url.as_ref().map(|s| s.0.as_str());
        Some(Arc::new(
            RateLimiter::new(&cfg.rate_limit, redis_url).map_err(anyhow::Error::msg)?,
        ))
    } else {
        None
    };
    Ok(AppState::new(Shared {
        cookie: CookieSettings::from_config(&cfg.session),
        cors: Cors::from_config(&cfg.cors),
        answer_headers: AnswerHeaders::new(
            cfg.mode,
            limiter.as_ref().map_or(&[], |l| l.policy.rules()),
        ),
        config: Arc::new(cfg),
        sessions: SessionService::new(store.clone(), policy, session_cache),
        store,
        accounts,
        mfa,
        recovery,
        oidc,
        keys,
        tenants,
        default_tenant,
        secret_key,
        trusted_proxies: Arc::new(trusted_proxies),
        tenant_cache: TenantCache::default(),
        limiter,
        limit_audit: Arc::default(),
        metrics: OnceLock::new(),
        metrics_allow: Arc::new(metrics_allow),
    }))
}

/// Deletes expired sessions of every tenant, forever, every `interval`.
pub fn spawn_session_purger(state: &AppState, interval: Duration) {
    let sessions = state.sessions.clone();
    let tenants = state.tenants.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let list = match tenants.list().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "session purge: listing tenants failed");
                    continue;
                }
            };
            for t in list {
                match sessions.purge(t.id).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(tenant = %t.slug, purged = n, "purged expired sessions")
                    }
                    Err(e) => tracing::warn!(tenant = %t.slug, error = %e, "session purge failed"),
                }
            }
        }
    });
}

/// Drops session cache entries past their TTL every `interval`, so sessions nobody
/// uses any more do not hold memory until the cache fills.
fn spawn_session_cache_sweeper(state: &AppState, interval: Duration) {
    let cache = state.sessions.cache().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            cache.sweep(aegis_core::clock::now_millis());
        }
    });
}

/// Drops idle in-process rate-limit keys every `interval_secs`, keeping memory bounded
/// under a flood of distinct keys.
fn spawn_limiter_pruner(limiter: &RateLimiter, interval_secs: u64) {
    let local = limiter.local();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(interval_secs.max(1)));
        loop {
            tick.tick().await;
            let removed = local.prune();
            if removed > 0 {
                tracing::debug!(removed, "pruned idle rate-limit keys");
            }
        }
    });
}

/// Runs the server until Ctrl-C / SIGTERM.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let listen = cfg.listen.clone();
    let purge = Duration::from_secs(cfg.session.purge_interval_secs);
    let mode = cfg.mode;
    let db = aegis_store::Backend::of_url(&cfg.database_url)?;
    let metrics_enabled = cfg.metrics.enabled;
    let state = build_state(cfg).await?;
    if metrics_enabled {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .context("installing the metrics recorder")?;
        let _ = state.metrics.set(handle);
    }
    spawn_session_purger(&state, purge);
    let cache_ttl = state.config.session.cache_ttl_secs;
    if cache_ttl > 0 {
        spawn_session_cache_sweeper(&state, Duration::from_secs(cache_ttl.max(5)));
        if let Some(url) = &state.config.redis_url {
            crate::session_sync::start(
                state.sessions.cache(),
                &url.0,
                &state.config.session.cache_channel,
            )
            .map_err(anyhow::Error::msg)?;
        }
    }
    if let Some(limiter) = &state.limiter {
        spawn_limiter_pruner(limiter, state.config.rate_limit.prune_interval_secs);
        if let Some(Err(e)) = limiter.redis_ping().await {
            tracing::warn!(error = %e, "rate limiter: Redis is not reachable yet; will retry on demand");
        }
        tracing::info!(backend = limiter.backend_name(), "rate limiting on");
    } else {
        tracing::warn!("rate limiting is off (rate_limit.enabled = false)");
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ?mode, database = ?db, "aegis listening on http://{addr}");
    // A machine-readable line for supervisors and tests that bind port 0.
    println!("listening on {addr}");
    crate::http::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

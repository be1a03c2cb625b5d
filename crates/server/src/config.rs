//! Configuration: one typed struct, loaded from defaults, then a TOML file, then `AEGIS_*`
//! environment variables, then command-line flags. `validate` explains every problem;
//! in production mode any problem refuses start-up.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::ratelimit::config::RateLimitConfig;

/// Development relaxes nothing silently; production refuses insecure settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `SameSite` attribute of the session cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Strict,
    Lax,
}

/// A secret string: never printed by `Debug` or serialised.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Session settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub absolute_lifetime_secs: u64,
    pub idle_timeout_secs: u64,
    pub activity_update_interval_secs: u64,
    pub purge_interval_secs: u64,
    pub cookie_secure: bool,
    pub cookie_same_site: SameSite,
    /// How long a validated session is answered from memory (0 = no cache). Logout and
    /// revocation take effect at once regardless (on every instance with Redis).
    pub cache_ttl_secs: u64,
    /// Most sessions held in the cache.
    pub cache_capacity: usize,
    /// Redis pub/sub channel on which instances tell each other about revocations.
    pub cache_channel: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            absolute_lifetime_secs: 8 * 3600,
            idle_timeout_secs: 30 * 60,
            activity_update_interval_secs: 60,
            purge_interval_secs: 300,
            cookie_secure: true,
            cookie_same_site: SameSite::Lax,
            cache_ttl_secs: 10,
            cache_capacity: 200_000,
            cache_channel: "aegis:session-invalidations".into(),
        }
    }
}

/// Password rules and hashing capacity.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    pub min_length: usize,
    pub max_length: usize,
    pub min_strength: u8,
    /// Simultaneous Argon2id computations; 0 = number of cores (fewer if memory is short).
    pub hash_concurrency: usize,
    /// Calls allowed to wait for a hashing slot; beyond this the server answers 429.
    /// 0 = 16 × hash_concurrency.
    pub hash_queue: usize,
    /// How long that 429 waits before it is sent (milliseconds, at most 5000; 0 = at
    /// once): a flood's connections then come back once per delay instead of as fast
    /// as the server can refuse them.
    pub busy_delay_ms: u64,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            min_length: 8,
            max_length: 128,
            min_strength: 3,
            hash_concurrency: 0,
            hash_queue: 0,
            busy_delay_ms: 250,
        }
    }
}

/// Account lockout after consecutive failures.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    pub threshold: i32,
    pub base_secs: u64,
    pub max_secs: u64,
    /// A locked account (and its account-keyed rate limits) still admits its owner
    /// from their known IPs: the last login IP and the IPs of live sessions.
    pub known_ip_bypass: bool,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            threshold: 5,
            base_secs: 60,
            max_secs: 3600,
            known_ip_bypass: true,
        }
    }
}

/// Cross-origin access.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    pub allow_credentials: bool,
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            allow_credentials: true,
            max_age_secs: 600,
        }
    }
}

/// Field encryption keys (AES-256-GCM) for secrets stored in the database.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// `id:base64-key` entries (32-byte keys, `aegis secrets generate`).
    pub keys: Vec<Secret>,
    /// Read more `id:base64-key` lines from this file.
    pub keys_file: Option<PathBuf>,
    /// The key new values are encrypted with (default: the first key).
    pub active_key: Option<String>,
}

impl EncryptionConfig {
    /// `(id, key)` pairs, or a line explaining what is malformed.
    pub fn pairs(&self) -> Result<Vec<(String, Secret)>, String> {
        let mut out = Vec::new();
        let mut lines: Vec<String> = self.keys.iter().map(|k| k.0.clone()).collect();
        if let Some(path) = &self.keys_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("encryption.keys_file {}: {e}", path.display()))?;
            lines.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
        for line in lines {
            let (id, key) = line
                .split_once(':')
                .ok_or("encryption.keys: entries look like id:base64-key")?;
            out.push((id.trim().to_string(), Secret(key.trim().to_string())));
        }
        Ok(out)
    }

    /// The configured key ring (`None` when no key is configured), or a line explaining
    /// what is wrong with the keys.
    pub fn key_ring(&self) -> Result<Option<aegis_core::fieldcrypt::KeyRing>, String> {
        let pairs = self.pairs()?;
        let Some((first, _)) = pairs.first() else {
            return Ok(None);
        };
        let active = self.active_key.as_deref().unwrap_or(first);
        aegis_core::fieldcrypt::KeyRing::new(
            pairs.iter().map(|(id, k)| (id.as_str(), k.0.as_str())),
            active,
        )
        .map(Some)
        .map_err(|e| format!("encryption: {e}"))
    }
}

/// Outgoing mail.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Sender address.
    pub from: String,
    /// `smtps://user:pass@host:465` or `smtp://host:587?tls=required`; without it mail is
    /// written to `dir` (development only).
    pub smtp_url: Option<Secret>,
    /// Where development mail goes.
    pub dir: PathBuf,
    pub timeout_secs: u64,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses before probing again.
    pub breaker_open_secs: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            from: "Aegis <no-reply@localhost>".into(),
            smtp_url: None,
            dir: PathBuf::from("mail"),
            timeout_secs: 10,
            breaker_failures: 5,
            breaker_open_secs: 30,
        }
    }
}

/// Multi-factor authentication.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// Issuer shown by authenticator apps.
    pub issuer: String,
}

impl Default for MfaConfig {
    fn default() -> Self {
        MfaConfig {
            issuer: "Aegis".into(),
        }
    }
}

/// The Prometheus endpoint `/metrics`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Client IPs/CIDRs allowed to read `/metrics`; everyone else gets 404.
    pub allow_from: Vec<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            allow_from: vec!["127.0.0.1/32".into(), "::1/128".into()],
        }
    }
}

/// HTTP limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 30,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mode: Mode,
    pub listen: String,
    pub database_url: String,
    /// PostgreSQL: the schema owner used for migrations (defaults to `database_url`).
    pub database_owner_url: Option<Secret>,
    pub database_max_connections: u32,
    pub migrate_on_start: bool,
    /// Key for CSRF tokens and other server-side MACs; at least 32 characters.
    pub secret_key: Option<Secret>,
    /// Read `secret_key` from this file instead.
    pub secret_key_file: Option<PathBuf>,
    /// Proxies (CIDR) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Redis for shared rate limits (`redis://` or `rediss://`); in-process without.
    pub redis_url: Option<Secret>,
    pub debug: bool,
    pub log_format: LogFormat,
    pub log_level: String,
    pub session: SessionConfig,
    pub password: PasswordConfig,
    pub lockout: LockoutConfig,
    pub cors: CorsConfig,
    pub http: HttpConfig,
    pub rate_limit: RateLimitConfig,
    pub metrics: MetricsConfig,
    pub encryption: EncryptionConfig,
    pub mfa: MfaConfig,
    pub mail: MailConfig,
    /// The URL browsers reach Aegis at (`https://auth.example.com`, or with a path
    /// prefix); provider callbacks are built from it. Development falls back to the
    /// request's Host.
    pub public_url: Option<String>,
    pub oidc: crate::oidc::OidcSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Development,
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://aegis.db".into(),
            database_owner_url: None,
            database_max_connections: 16,
            migrate_on_start: true,
            secret_key: None,
            secret_key_file: None,
            trusted_proxies: Vec::new(),
            redis_url: None,
            debug: false,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            session: SessionConfig::default(),
            password: PasswordConfig::default(),
            lockout: LockoutConfig::default(),
            cors: CorsConfig::default(),
            http: HttpConfig::default(),
            rate_limit: RateLimitConfig::default(),
            metrics: MetricsConfig::default(),
            encryption: EncryptionConfig::default(),
            mfa: MfaConfig::default(),
            mail: MailConfig::default(),
            public_url: None,
            oidc: crate::oidc::OidcSection::default(),
        }
    }
}

/// How an environment variable's text becomes a TOML value.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Int,
    Bool,
    /// Comma-separated list of strings.
    List,
}

/// Every key settable from the environment, as `AEGIS_<KEY WITH . AS _>`.
const ENV_KEYS: &[(&str, Kind)] = &[
    ("mode", Kind::Str),
    ("listen", Kind::Str),
    ("database_url", Kind::Str),
    ("database_owner_url", Kind::Str),
    ("database_max_connections", Kind::Int),
    ("migrate_on_start", Kind::Bool),
    ("secret_key", Kind::Str),
    ("secret_key_file", Kind::Str),
    ("trusted_proxies", Kind::List),
    ("redis_url", Kind::Str),
    ("debug", Kind::Bool),
    ("log_format", Kind::Str),
    ("log_level", Kind::Str),
    ("session.absolute_lifetime_secs", Kind::Int),
    ("session.idle_timeout_secs", Kind::Int),
    ("session.activity_update_interval_secs", Kind::Int),
    ("session.purge_interval_secs", Kind::Int),
    ("session.cookie_secure", Kind::Bool),
    ("session.cookie_same_site", Kind::Str),
    ("session.cache_ttl_secs", Kind::Int),
    ("session.cache_capacity", Kind::Int),
    ("session.cache_channel", Kind::Str),
    ("password.min_length", Kind::Int),
    ("password.max_length", Kind::Int),
    ("password.min_strength", Kind::Int),
    ("password.hash_concurrency", Kind::Int),
    ("password.hash_queue", Kind::Int),
    ("password.busy_delay_ms", Kind::Int),
    ("lockout.threshold", Kind::Int),
    ("lockout.base_secs", Kind::Int),
    ("lockout.max_secs", Kind::Int),
    ("lockout.known_ip_bypass", Kind::Bool),
    ("cors.allowed_origins", Kind::List),
    ("cors.allow_credentials", Kind::Bool),
    ("cors.max_age_secs", Kind::Int),
    ("http.max_body_bytes", Kind::Int),
    ("http.request_timeout_secs", Kind::Int),
    ("rate_limit.enabled", Kind::Bool),
    ("rate_limit.failure_mode", Kind::Str),
    ("rate_limit.redis_prefix", Kind::Str),
    ("rate_limit.redis_timeout_ms", Kind::Int),
    ("rate_limit.prune_interval_secs", Kind::Int),
    ("encryption.keys", Kind::List),
    ("encryption.keys_file", Kind::Str),
    ("encryption.active_key", Kind::Str),
    ("mfa.issuer", Kind::Str),
    ("mail.from", Kind::Str),
    ("mail.smtp_url", Kind::Str),
    ("mail.dir", Kind::Str),
    ("mail.timeout_secs", Kind::Int),
    ("mail.breaker_failures", Kind::Int),
    ("mail.breaker_open_secs", Kind::Int),
    ("metrics.enabled", Kind::Bool),
    ("metrics.allow_from", Kind::List),
    ("public_url", Kind::Str),
    ("oidc.return_to_origins", Kind::List),
    ("oidc.state_ttl_secs", Kind::Int),
    ("oidc.clock_skew_secs", Kind::Int),
    ("oidc.http_timeout_secs", Kind::Int),
    ("oidc.metadata_ttl_secs", Kind::Int),
    ("oidc.jwks_ttl_secs", Kind::Int),
    ("oidc.breaker_failures", Kind::Int),
    ("oidc.breaker_open_secs", Kind::Int),
];

/// The environment variable name for a config key.
pub fn env_name(key: &str) -> String {
    format!("AEGIS_{}", key.replace('.', "_").to_ascii_uppercase())
}

fn env_value(key: &str, kind: Kind, raw: &str) -> Result<toml::Value, String> {
    let bad = |what: &str| format!("{}: expected {what}", env_name(key));
    Ok(match kind {
        Kind::Str => toml::Value::String(raw.to_string()),
        Kind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Kind::Bool => toml::Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(bad("true or false")),
        }),
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
    })
}

fn set_path(root: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            root.insert(key.to_string(), value);
        }
        Some((section, rest)) => {
            let entry = root
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

/// Command-line overrides (highest precedence).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub mode: Option<Mode>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
}

impl Config {
    /// Loads defaults < file < environment < flags.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, String> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?;
                text.parse::<toml::Table>()
                    .map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => toml::Table::new(),
        };
        let env: std::collections::HashMap<String, String> = env.collect();
        for (key, kind) in ENV_KEYS {
            if let Some(raw) = env.get(&env_name(key)) {
                set_path(&mut table, key, env_value(key, *kind, raw)?);
            }
        }
        let mut cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("configuration: {}", e.message()))?;
        if let Some(m) = flags.mode {
            cfg.mode = m;
        }
        if let Some(l) = &flags.listen {
            cfg.listen = l.clone();
        }
        if let Some(d) = &flags.database_url {
            cfg.database_url = d.clone();
        }
        if let Some(path) = cfg.secret_key_file.clone() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("secret_key_file {}: {e}", path.display()))?;
            cfg.secret_key = Some(Secret(text.trim().to_string()));
        }
        Ok(cfg)
    }

    /// Every problem with this configuration, one line each. In development only
    /// outright errors are reported; production adds the security rules.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "listen: '{}' is not an address like 127.0.0.1:8080",
                self.listen
            ));
        }
        if aegis_store::Backend::of_url(&self.database_url).is_err() {
            p.push("database_url: must start with sqlite: or postgres://".into());
        }
        for cidr in &self.trusted_proxies {
            if parse_cidr(cidr).is_none() {
                p.push(format!("trusted_proxies: '{cidr}' is not an IP or CIDR"));
            }
        }
        for cidr in &self.metrics.allow_from {
            if parse_cidr(cidr).is_none() {
                p.push(format!("metrics.allow_from: '{cidr}' is not an IP or CIDR"));
            }
        }
        if let Some(url) = &self.redis_url
            && !(url.0.starts_with("redis://") || url.0.starts_with("rediss://"))
        {
            p.push("redis_url: must start with redis:// or rediss://".into());
        }
        p.extend(self.rate_limit.problems());
        if let Err(e) = self.encryption.key_ring() {
            p.push(e);
        }
        for o in &self.cors.allowed_origins {
            if o != "*" && !is_origin(o) {
                p.push(format!(
                    "cors.allowed_origins: '{o}' is not an origin like https://app.example.com"
                ));
            }
        }
        if let Some(u) = &self.public_url
            && !is_public_url(u)
        {
            p.push(format!(
                "public_url: '{u}' is not a URL like https://auth.example.com (an optional path, no query, no trailing slash)"
            ));
        }
        p.extend(self.oidc.problems(is_origin));
        if self.cors.allow_credentials && self.cors.allowed_origins.iter().any(|o| o == "*") {
            p.push("cors: allowed_origins contains '*' while allow_credentials is true".into());
        }
        let s = &self.session;
        if s.absolute_lifetime_secs == 0 || s.idle_timeout_secs == 0 {
            p.push("session: absolute_lifetime_secs and idle_timeout_secs must be > 0".into());
        }
        if s.purge_interval_secs == 0 {
            p.push("session.purge_interval_secs: must be > 0".into());
        }
        if s.cache_ttl_secs > 300 {
            p.push("session.cache_ttl_secs: at most 300 (it bounds how long a change made outside Aegis can go unseen)".into());
        }
        if s.cache_channel.trim().is_empty() {
            p.push("session.cache_channel: must not be empty".into());
        }
        let pw = &self.password;
        if pw.min_strength > 4 {
            p.push("password.min_strength: must be 0..=4".into());
        }
        if pw.busy_delay_ms > 5000 {
            p.push("password.busy_delay_ms: at most 5000".into());
        }
        if pw.min_length < 8 || pw.max_length < pw.min_length || pw.max_length > 1024 {
            p.push("password: need 8 <= min_length <= max_length <= 1024".into());
        }
        if self.http.max_body_bytes < 1024 {
            p.push("http.max_body_bytes: must be at least 1024".into());
        }
        if !matches!(
            self.log_level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error"
        ) {
            p.push("log_level: one of trace, debug, info, warn, error".into());
        }
        if let Some(why) = self.secret_key.as_ref().and_then(|k| weak_secret(&k.0)) {
            p.push(format!("secret_key: {why}"));
        }
        if self.mode == Mode::Production {
            self.production_problems(&mut p);
        }
        p
    }

    fn production_problems(&self, p: &mut Vec<String>) {
        if !self.session.cookie_secure {
            p.push("session.cookie_secure: must be true in production".into());
        }
        if self.secret_key.is_none() {
            p.push(
                "secret_key: missing; set AEGIS_SECRET_KEY or secret_key_file (generate one with `aegis secrets generate`)"
                    .into(),
            );
        }
        for (name, url) in [
            ("database_url", Some(self.database_url.as_str())),
            (
                "database_owner_url",
                self.database_owner_url.as_ref().map(|s| s.0.as_str()),
            ),
        ] {
            if let Some(url) = url
                && url.starts_with("postgres")
                && !requires_tls(url)
            {
                p.push(format!(
                    "{name}: PostgreSQL connections must use TLS (add sslmode=require, verify-ca or verify-full)"
                ));
            }
        }
        if self.trusted_proxies.is_empty() {
            p.push(
                "listen: Aegis serves plain HTTP, so in production it must sit behind a TLS-terminating proxy listed in trusted_proxies"
                    .into(),
            );
        }
        match &self.mail.smtp_url {
            None => p.push(
                "mail.smtp_url: missing; production mail goes through SMTP with TLS (smtps:// or smtp://...?tls=required)"
                    .into(),
            ),
            Some(url) if !(url.0.starts_with("smtps://") || url.0.contains("tls=required")) => p
                .push(
                    "mail.smtp_url: SMTP must use TLS in production (smtps:// or ?tls=required)"
                        .into(),
                ),
            Some(_) => {}
        }
        if self.encryption.keys.is_empty() && self.encryption.keys_file.is_none() {
            p.push(
                "encryption.keys: missing; set AEGIS_ENCRYPTION_KEYS=id:key (generate one with `aegis secrets generate`)"
                    .into(),
            );
        }
        if self
            .redis_url
            .as_ref()
            .is_some_and(|u| !u.0.starts_with("rediss://"))
        {
            p.push("redis_url: Redis connections must use TLS in production (rediss://)".into());
        }
        if self
            .public_url
            .as_ref()
            .is_some_and(|u| !u.starts_with("https://"))
        {
            p.push("public_url: must be https:// in production".into());
        }
        if self.debug {
            p.push("debug: must be false in production".into());
        }
        if matches!(self.log_level.as_str(), "trace" | "debug") {
            p.push("log_level: trace/debug logging is not allowed in production".into());
        }
    }
}

/// Why a secret is unacceptable, if it is.
pub fn weak_secret(secret: &str) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        "changeme",
        "change-me",
        "secret",
        "password",
        "development",
        "insecure",
        "aegis",
        "default",
        "example",
        "test",
    ];
    let lower = secret.to_ascii_lowercase();
    if secret.len() < 32 {
        return Some("too short (at least 32 characters; use `aegis secrets generate`)");
    }
    if KNOWN.iter().any(|k| lower.contains(k)) {
        return Some("a known default or placeholder value");
    }
    let distinct: std::collections::HashSet<char> = secret.chars().collect();
    if distinct.len() < 10 {
        return Some("too little variety to be random");
    }
    None
}

fn requires_tls(url: &str) -> bool {
    url::Url::parse(url).ok().is_some_and(|u| {
        u.query_pairs().any(|(k, v)| {
            k == "sslmode" && matches!(v.as_ref(), "require" | "verify-ca" | "verify-full")
        })
    })
}

fn is_origin(o: &str) -> bool {
    url::Url::parse(o).ok().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && (u.path() == "/" || u.path().is_empty())
            && u.query().is_none()
            && !o.ends_with('/')
    })
}

fn is_public_url(u: &str) -> bool {
    url::Url::parse(u).ok().is_some_and(|p| {
        matches!(p.scheme(), "http" | "https")
            && p.host_str().is_some()
            && p.query().is_none()
            && p.fragment().is_none()
            && p.username().is_empty()
            && !u.ends_with('/')
    })
}

/// Parses an IP or CIDR into a network.
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// The config reference: every key with its environment variable and default.
pub fn reference() -> String {
    let defaults = toml::to_string_pretty(&Config::default()).unwrap_or_default();
    let mut out =
        String::from("# Defaults (TOML). Each key may also be set as an environment variable:\n");
    for (key, _) in ENV_KEYS {
        out.push_str(&format!("#   {key:<40} {}\n", env_name(key)));
    }
    out.push('\n');
    out.push_str(&defaults);
    #[derive(Serialize)]
    struct BuiltinRules {
        rules: std::collections::BTreeMap<String, crate::ratelimit::config::RuleConfig>,
    }
    let builtin = BuiltinRules {
        rules: crate::ratelimit::config::builtin_rules(),
    };
    out.push_str(
        "\n# Built-in rate-limit rules. A [rate_limit.rules.NAME] table replaces the rule of\n\
         # that name (enabled = false removes it); new names add rules.\n",
    );
    let mut rules = toml::Table::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(&builtin) {
        rules.insert("rate_limit".into(), toml::Value::Table(t));
    }
    out.push_str(&toml::to_string_pretty(&rules).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, String> {
        Config::load(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &Overrides::default(),
        )
    }

    #[test]
    fn env_overrides_nested_keys() {
        let c = load(&[
            ("AEGIS_SESSION_IDLE_TIMEOUT_SECS", "5"),
            (
                "AEGIS_CORS_ALLOWED_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("AEGIS_SECRET_KEY", "12345678901234567890123456789012345"),
        ])
        .unwrap();
        assert_eq!(c.session.idle_timeout_secs, 5);
        assert_eq!(c.cors.allowed_origins.len(), 2);
        assert!(c.secret_key.is_some());
        assert!(load(&[("AEGIS_DEBUG", "maybe")]).is_err());
    }

    #[test]
    fn production_requires_tls_for_postgres() {
        assert!(requires_tls("postgres://a@h/db?sslmode=verify-full"));
        assert!(!requires_tls("postgres://a@h/db?sslmode=prefer"));
        assert!(!requires_tls("postgres://a@h/db"));
    }

    #[test]
    fn weak_secrets_are_named() {
        assert!(weak_secret("short").is_some());
        assert!(weak_secret("changeme-changeme-changeme-changeme").is_some());
        assert!(weak_secret(&"a".repeat(40)).is_some());
        assert!(weak_secret("q8Zr1mN0pX4vL7sT2wK9bH6cJ3dF5gY0aE").is_none());
    }

    #[test]
    fn encryption_keys_come_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(
            &file,
            "# rotated 2026-11\nk2:HxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo\n",
        )
        .unwrap();
        let c = load(&[
            (
                "AEGIS_ENCRYPTION_KEYS",
                "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            ),
            ("AEGIS_ENCRYPTION_KEYS_FILE", file.to_str().unwrap()),
            ("AEGIS_ENCRYPTION_ACTIVE_KEY", "k2"),
        ])
        .unwrap();
        let ids: Vec<String> = c
            .encryption
            .pairs()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["k1", "k2"]);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let bad = load(&[
            (
                "AEGIS_ENCRYPTION_KEYS",
                "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            ),
            ("AEGIS_ENCRYPTION_ACTIVE_KEY", "k9"),
        ])
        .unwrap();
        assert!(bad.problems().iter().any(|p| p.contains("active key 'k9'")));
        assert!(
            !format!("{:?}", c.encryption).contains("AAECAw"),
            "keys are redacted"
        );
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}

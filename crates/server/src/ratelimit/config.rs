//! Rate-limit configuration: named rules, each a quota on a key for some routes. The
//! built-in rules are merged with the configured ones by name, so a deployment changes
//! one rule (or disables it) without restating the others.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::http::checks::IdentityCheck;

/// What a rule counts requests by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The client IP (see `trusted_proxies`).
    Ip,
    /// The resolved tenant.
    Tenant,
    /// The session token (cookie or bearer), hashed.
    Session,
    /// The `X-API-Key` header, hashed.
    ApiKey,
    /// The account named in the request body (`email`) together with the client IP.
    AccountIp,
    /// The account named in the request body (`email`), in its tenant.
    Account,
}

impl KeyKind {
    /// Account keys are checked last: a refusal there may be waived for the owner's
    /// known IPs, and IP limits must already have been applied.
    pub fn evaluation_rank(self) -> u8 {
        match self {
            KeyKind::Ip => 0,
            KeyKind::Tenant => 1,
            KeyKind::Session => 2,
            KeyKind::ApiKey => 3,
            KeyKind::AccountIp => 4,
            KeyKind::Account => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ip => "ip",
            KeyKind::Tenant => "tenant",
            KeyKind::Session => "session",
            KeyKind::ApiKey => "api_key",
            KeyKind::AccountIp => "account_ip",
            KeyKind::Account => "account",
        }
    }
}

/// What happens when Redis cannot answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Refuse with 503 and `Retry-After`.
    FailClosed,
    /// Decide with the in-process limiter of this instance, log a warning, count it.
    FailOpen,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `"METHOD /path"`, `"/path"` (any method), a trailing `*` matches a prefix, `"*"`
    /// matches every request.
    pub routes: Vec<String>,
    /// Routes (same patterns) the rule leaves alone although `routes` names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    pub key: KeyKind,
    /// Requests per `period_secs`.
    pub limit: u32,
    pub period_secs: u64,
    /// Requests admitted at once (defaults to `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// `false` removes a built-in rule.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// The `[rate_limit]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Used only with `redis_url`.
    pub failure_mode: FailureMode,
    /// Prefix of every Redis key (lets several deployments share one Redis).
    pub redis_prefix: String,
    /// Longest wait for a Redis answer before the failure mode applies.
    pub redis_timeout_ms: u64,
    /// How often idle in-process keys are dropped.
    pub prune_interval_secs: u64,
    /// Rules by name, merged over the built-in ones.
    pub rules: BTreeMap<String, RuleConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            failure_mode: FailureMode::FailOpen,
            redis_prefix: "aegis:rl:".into(),
            redis_timeout_ms: 250,
            prune_interval_secs: 60,
            rules: BTreeMap::new(),
        }
    }
}

fn rule(routes: &[&str], key: KeyKind, limit: u32, period_secs: u64) -> RuleConfig {
    RuleConfig {
        routes: routes.iter().map(|r| r.to_string()).collect(),
        except: Vec::new(),
        key,
        limit,
        period_secs,
        burst: None,
        enabled: true,
    }
}

/// The paths of the identity checks, which the default rule leaves alone: a reverse proxy asks
/// forward-auth before every request it passes on (every asset of every page), all
/// from its own address unless it is a trusted proxy, and an app may ask who is
/// calling as often; 120 a minute per IP would turn them away within seconds. A warm
/// check costs a cache lookup, and guessing a 256-bit token is hopeless, so like
/// oauth2-proxy's and Authelia's checks they are unlimited unless configured.
fn identity_check_paths() -> Vec<String> {
    IdentityCheck::ALL
        .iter()
        .map(|c| c.path().to_string())
        .collect()
}

/// The built-in rules: 120/min per IP everywhere but the identity checks, and the
/// tighter limits of the authentication routes (S0.6, S2.5, S3.11).
pub fn builtin_rules() -> BTreeMap<String, RuleConfig> {
    const LOGIN: &[&str] = &["POST /api/v1/login"];
    BTreeMap::from([
        (
            "default".into(),
            RuleConfig {
                except: identity_check_paths(),
                ..rule(&["*"], KeyKind::Ip, 120, 60)
            },
        ),
        ("login-ip".into(), rule(LOGIN, KeyKind::Ip, 5, 60)),
        ("login-ip-15m".into(), rule(LOGIN, KeyKind::Ip, 5, 900)),
        (
            "login-account-ip".into(),
            rule(LOGIN, KeyKind::AccountIp, 5, 900),
        ),
        ("login-account".into(), rule(LOGIN, KeyKind::Account, 5, 60)),
        (
            "login-account-15m".into(),
            rule(LOGIN, KeyKind::Account, 5, 900),
        ),
        (
            "oidc-ip".into(),
            rule(&["GET /auth/oidc/*"], KeyKind::Ip, 10, 60),
        ),
        (
            "mfa-login-ip".into(),
            rule(&["POST /api/v1/login/mfa"], KeyKind::Ip, 10, 60),
        ),
        (
            "mfa-manage-session".into(),
            rule(&["POST /api/v1/mfa/*"], KeyKind::Session, 10, 60),
        ),
        (
            "password-reset-ip".into(),
            rule(
                &[
                    "POST /api/v1/password/reset/*",
                    "POST /api/v1/password/reset",
                ],
                KeyKind::Ip,
                5,
                900,
            ),
        ),
        (
            "password-reset-account".into(),
            rule(
                &["POST /api/v1/password/reset/request"],
                KeyKind::Account,
                3,
                900,
            ),
        ),
        (
            "verify-resend-account".into(),
            rule(
                &["POST /api/v1/email/verify/resend"],
                KeyKind::Account,
                3,
                900,
            ),
        ),
        (
            "verify-ip".into(),
            rule(
                &[
                    "POST /api/v1/email/verify",
                    "POST /api/v1/email/verify/resend",
                ],
                KeyKind::Ip,
                10,
                900,
            ),
        ),
        (
            "register-ip".into(),
            rule(&["POST /api/v1/register"], KeyKind::Ip, 3, 60),
        ),
        (
            "password-change".into(),
            rule(&["POST /api/v1/password"], KeyKind::Session, 5, 900),
        ),
        (
            "admin-session".into(),
            rule(
                &["/api/v1/admin/*", "/api/v1/audit"],
                KeyKind::Session,
                120,
                60,
            ),
        ),
    ])
}

impl RateLimitConfig {
    /// Built-in rules overlaid with the configured ones, without disabled rules.
    pub fn effective_rules(&self) -> BTreeMap<String, RuleConfig> {
        let mut rules = builtin_rules();
        for (name, r) in &self.rules {
            rules.insert(name.clone(), r.clone());
        }
        rules.retain(|_, r| r.enabled);
        rules
    }

    /// Problems with this section, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.redis_timeout_ms == 0 {
            p.push("rate_limit.redis_timeout_ms: must be > 0".into());
        }
        if self.prune_interval_secs == 0 {
            p.push("rate_limit.prune_interval_secs: must be > 0".into());
        }
        for (name, r) in &self.rules {
            let at = format!("rate_limit.rules.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                p.push(format!("{at}: names use letters, digits, '-' and '_'"));
            }
            if r.limit == 0 || r.period_secs == 0 {
                p.push(format!("{at}: limit and period_secs must be > 0"));
            }
            if r.burst == Some(0) {
                p.push(format!("{at}: burst must be > 0"));
            }
            if r.routes.is_empty() {
                p.push(format!(
                    "{at}: routes must name at least one route (\"*\" for all)"
                ));
            }
            for route in r.routes.iter().chain(&r.except) {
                if let Err(why) = super::policy::RoutePattern::parse(route) {
                    p.push(format!("{at}: route '{route}': {why}"));
                }
            }
        }
        p
    }
}

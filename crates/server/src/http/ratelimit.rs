//! The rate-limit middleware: finds the rules for a request, builds their keys, asks
//! the limiter, and answers 429 (or 503 when the limiter is down and configured to fail
//! closed). Every limited response carries `RateLimit-Policy`/`RateLimit` and
//! `X-RateLimit-*` headers.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use aegis_core::audit::{self, Action};
use aegis_core::crypto::{b64url, sha256};
use aegis_core::email::normalize_email;
use aegis_core::ids::TenantId;
use aegis_core::model::RequestMeta;
use aegis_core::ratelimit::{Check, Decision, Micros};

use super::cookie::CookieSettings;
use super::error::ApiError;
use super::extract::{RequestContext, bearer_token, request_ip, request_meta};
use super::state::AppState;
use crate::ratelimit::config::KeyKind;
use crate::ratelimit::policy::Rule;

/// A short, non-reversible key part for secrets and personal data: rate-limit keys end
/// up in Redis and must not carry tokens or e-mail addresses.
fn digest(parts: &[&[u8]]) -> String {
    let mut joined = Vec::new();
    for p in parts {
        joined.extend_from_slice(p);
        joined.push(0);
    }
    b64url(&sha256(&joined)[..16])
}

/// Appends an IP address as `Display` writes it. IPv4, the usual case, without the
/// `fmt` machinery (which cost a limited request more than its map lookup).
fn push_ip(key: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    key.push('.');
                }
                key.push_str(digits.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(key, "{v6}");
        }
    }
}

/// What a request can be keyed by. The credentials are looked up only for rules keyed
/// by them (most requests meet only the IP-keyed default rule).
struct KeySource<'a> {
    ip: Option<IpAddr>,
    tenant: Option<TenantId>,
    headers: &'a HeaderMap,
    cookie: &'a CookieSettings,
    account: Option<&'a str>,
}

impl<'a> KeySource<'a> {
    /// The session token: the session cookie, else a bearer token.
    fn session(&self) -> Option<&'a str> {
        self.cookie
            .read(self.headers)
            .or_else(|| bearer_token(self.headers))
    }

    fn api_key(&self) -> Option<&'a str> {
        self.headers.get("x-api-key").and_then(|v| v.to_str().ok())
    }

    /// `rule:part`, built in one buffer (this runs for every rule of every request).
    fn key(&self, rule: &Rule) -> Option<String> {
        let tenant_id = || self.tenant.map(|t| t.to_string());
        let mut key = String::with_capacity(rule.name.len() + 48);
        key.push_str(&rule.name);
        key.push(':');
        match rule.key {
            KeyKind::Ip => push_ip(&mut key, self.ip?),
            KeyKind::Tenant => write!(key, "{}", self.tenant?).ok()?,
            KeyKind::Session => key.push_str(&digest(&[self.session()?.as_bytes()])),
            KeyKind::ApiKey => key.push_str(&digest(&[self.api_key()?.as_bytes()])),
            KeyKind::Account => key.push_str(&digest(&[
                tenant_id()?.as_bytes(),
                self.account?.as_bytes(),
            ])),
            KeyKind::AccountIp => {
                let ip = self.ip?;
                key.push_str(&digest(&[
                    tenant_id()?.as_bytes(),
                    self.account?.as_bytes(),
                ]));
                key.push(':');
                push_ip(&mut key, ip);
            }
        }
        Some(key)
    }
}

/// The account a login-like request names: its normalised `email` field.
fn account_in(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let email = value.get("email")?.as_str()?;
    Some(normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase()))
}

/// Remembers which refusals were audited recently, so a flood of refused requests
/// writes one audit entry per rule and key per window instead of one per request.
#[derive(Default)]
pub struct AuditThrottle {
    until: Mutex<HashMap<String, Instant>>,
}

impl AuditThrottle {
    /// Whether this refusal should be audited now.
    fn first(&self, key: &str, window: Duration) -> bool {
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.get(key).is_some_and(|t| *t > now) {
            return false;
        }
        if map.len() >= 10_000 {
            map.retain(|_, t| *t > now);
            if map.len() >= 10_000 {
                return false;
            }
        }
        map.insert(key.to_string(), now + window);
        true
    }
}

fn secs_ceil(us: i64) -> u64 {
    u64::try_from((us.max(0) + 999_999) / 1_000_000).unwrap_or(0)
}

/// The rate-limit headers of one answer that change from answer to answer, built
/// from the decision the request was admitted with; the rule's constant ones
/// (`RateLimit-Policy`, `X-RateLimit-Limit`) come with the answer template (see
/// `AnswerHeaders`), which has a place for each of these (see [`slot_names`]).
pub struct LimitHeaders {
    /// The rule shown (`Rule::index`).
    pub rule: usize,
    /// `RateLimit`: present exactly when the rule has a `RateLimit-Policy` (a rule
    /// whose name cannot appear in a header has neither).
    current: Option<HeaderValue>,
    remaining: HeaderValue,
    reset: HeaderValue,
}

/// The text behind the changing values, `"name";r=R;t=T`, in place for the usual
/// rule names: one allocation (the shared owner) for all three values.
struct LimitText {
    len: usize,
    buf: [u8; 96],
}

impl AsRef<[u8]> for LimitText {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl LimitHeaders {
    /// The headers for `decision` under `rule`. Runs for every limited request: the
    /// three values share one buffer, `"name";r=R;t=T`: the `RateLimit` value is all
    /// of it, `X-RateLimit-Remaining` and `X-RateLimit-Reset` are slices of it.
    /// `None` only if a `RateLimit` value cannot be made for a rule that has a policy
    /// header (its name is header-safe, so it can).
    pub fn new(rule: &Rule, decision: &Decision) -> Option<Self> {
        let reset = secs_ceil(decision.reset_us);
        let (mut r, mut t) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (r, t) = (r.format(decision.remaining), t.format(reset));
        let parts = ["\"", &*rule.name, "\";r=", r, ";t=", t];
        let remaining_at = rule.name.len() + 5..rule.name.len() + 5 + r.len();
        let reset_at = remaining_at.end + 3..remaining_at.end + 3 + t.len();
        let len = reset_at.end;
        let text = if len <= 96 {
            let mut text = LimitText { len, buf: [0; 96] };
            let mut at = 0;
            for p in parts {
                text.buf[at..at + p.len()].copy_from_slice(p.as_bytes());
                at += p.len();
            }
            Bytes::from_owner(text)
        } else {
            Bytes::from(parts.concat())
        };
        let value = |range| HeaderValue::from_maybe_shared(text.slice(range)).ok();
        let current = match rule.policy_header {
            Some(_) => Some(value(0..len)?),
            None => None,
        };
        Some(LimitHeaders {
            rule: rule.index,
            current,
            remaining: value(remaining_at).unwrap_or_else(|| decision.remaining.into()),
            reset: value(reset_at).unwrap_or_else(|| reset.into()),
        })
    }

    /// The values `RateLimit` (present exactly when the rule has a policy header),
    /// `X-RateLimit-Remaining` and `X-RateLimit-Reset`: the order of [`slot_names`].
    pub fn into_values(self) -> (Option<HeaderValue>, HeaderValue, HeaderValue) {
        (self.current, self.remaining, self.reset)
    }

    /// Adds all the headers of `rule` (whose decision these are) to an answer.
    pub fn apply(self, rule: &Rule, headers: &mut HeaderMap) {
        for (name, value) in constant_headers(rule) {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        let (current, remaining, reset) = self.into_values();
        if let Some(current) = current {
            headers.insert(RATELIMIT, current);
        }
        headers.insert(X_RATELIMIT_REMAINING, remaining);
        headers.insert(X_RATELIMIT_RESET, reset);
    }
}

/// The headers of `rule` that never change, for answer templates.
pub fn constant_headers(rule: &Rule) -> [(HeaderName, Option<HeaderValue>); 2] {
    [
        (RATELIMIT_POLICY, rule.policy_header.clone()),
        (X_RATELIMIT_LIMIT, Some(rule.limit_header.clone())),
    ]
}

/// The names of `rule`'s headers that change from answer to answer, in the order
/// [`LimitHeaders::into_values`] gives their values.
pub fn slot_names(rule: &Rule) -> Vec<HeaderName> {
    let current = rule.policy_header.as_ref().map(|_| RATELIMIT);
    current
        .into_iter()
        .chain([X_RATELIMIT_REMAINING, X_RATELIMIT_RESET])
        .collect()
}

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The outcome of admitting a request: it goes on (with the decision its answer shows,
/// if a rule applied), or it is refused with this answer.
pub type Admission = Result<Option<Shown>, Response>;

/// The decision of the tightest rule that admitted a request, for its answer's headers.
/// Small, unlike the headers: it is held while the request is handled.
#[derive(Clone, Copy, Debug)]
pub struct Shown {
    /// `Rule::index`.
    pub rule: usize,
    pub decision: Decision,
}

impl Shown {
    /// The answer's rate-limit headers.
    pub fn headers(&self, state: &AppState) -> Option<LimitHeaders> {
        let rule = state.limiter.as_deref()?.policy.rules().get(self.rule)?;
        LimitHeaders::new(rule, &self.decision)
    }
}

/// Checks a request (whose tenant is resolved) against the rules that match it, at
/// `now` (Unix microseconds).
pub async fn admit(state: &AppState, req: &mut Request, now: Micros) -> Admission {
    let Some(limiter) = state.limiter.as_deref() else {
        return Ok(None);
    };
    let mut applied: Vec<&Rule> = limiter
        .policy
        .matching(req.method(), req.uri().path())
        .collect();
    if applied.is_empty() {
        return Ok(None);
    }
    let needs_account = applied
        .iter()
        .any(|r| matches!(r.key, KeyKind::Account | KeyKind::AccountIp));
    // What may wait (reading the body, asking Redis, auditing a refusal) is boxed: this
    // future is part of every request's, and whatever it holds inline is moved with it.
    // The usual request, in-process limits and no body to read, waits for nothing.
    let account = if needs_account {
        Box::pin(account_of(state, req)).await?
    } else {
        None
    };
    let checks = keys(state, req, &mut applied, account.as_deref());
    let decisions = match limiter.decide_locally(&checks, now) {
        Some(decisions) => decisions,
        None => match Box::pin(limiter.check(&checks, now)).await {
            Ok(decisions) => decisions,
            Err(_) => return Err(unavailable()),
        },
    };
    let Some(last) = decisions.last().copied() else {
        return Ok(None);
    };
    let refused_at = decisions.len() - 1;
    if !last.allowed {
        let refusal = Refusal {
            rule: applied[refused_at],
            key: &checks[refused_at].key,
            decision: last,
            account: account.as_deref(),
            tenant: tenant_of(req),
            meta: request_meta(req.extensions(), req.headers(), state),
        };
        Box::pin(refuse_unless_waived(state, refusal)).await?;
    }
    // Report the tightest admitted rule.
    let shown = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.allowed)
        .min_by_key(|(_, d)| d.remaining);
    Ok(shown.map(|(i, d)| Shown {
        rule: applied[i].index,
        decision: *d,
    }))
}

/// The account a request names, for the account-keyed rules: its body is read (and
/// put back for the handler).
async fn account_of(state: &AppState, req: &mut Request) -> Result<Option<String>, Response> {
    let limit = state.config.http.max_body_bytes;
    let body = std::mem::take(req.body_mut());
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!("request body: larger than {limit} bytes"))
            .into_response()
    })?;
    let account = account_in(&bytes);
    *req.body_mut() = Body::from(bytes);
    Ok(account)
}

/// The checks of the rules in `applied` for this request; a rule whose key the request
/// lacks (no session, say) does not apply and leaves `applied`.
fn keys(
    state: &AppState,
    req: &Request,
    applied: &mut Vec<&Rule>,
    account: Option<&str>,
) -> Vec<Check> {
    // Only the client IP and the tenant id: the full request facts are gathered for a
    // refusal alone.
    let source = KeySource {
        ip: request_ip(req.extensions(), req.headers(), state),
        tenant: tenant_of(req),
        headers: req.headers(),
        cookie: &state.cookie,
        account,
    };
    let mut checks = Vec::with_capacity(applied.len());
    applied.retain(|rule| match source.key(rule) {
        Some(key) => {
            checks.push(Check {
                key,
                quota: rule.quota,
            });
            true
        }
        None => false,
    });
    checks
}

fn tenant_of(req: &Request) -> Option<TenantId> {
    req.extensions()
        .get::<RequestContext>()
        .map(|c| c.tenant.id)
}

/// The answer when the limiter cannot decide and the failure mode says refuse.
fn unavailable() -> Response {
    let mut resp =
        ApiError::Unavailable("rate limiter unavailable; retry shortly".into()).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// A rule that refused a request, with the request's facts.
struct Refusal<'a> {
    rule: &'a Rule,
    key: &'a str,
    decision: Decision,
    account: Option<&'a str>,
    tenant: Option<TenantId>,
    meta: RequestMeta,
}

/// The 429 answer for a refusal, unless the rule is keyed by account and the account
/// has signed in from this IP before (a lockout does not lock its owner out).
async fn refuse_unless_waived(state: &AppState, refusal: Refusal<'_>) -> Result<(), Response> {
    let Refusal {
        rule,
        key,
        decision,
        account,
        tenant,
        meta,
    } = refusal;
    let waived = rule.key == KeyKind::Account
        && match (tenant, account) {
            (Some(t), Some(email)) => state
                .accounts
                .known_ip_waives_lockout(t, email, meta.ip.as_deref())
                .await
                .unwrap_or(false),
            _ => false,
        };
    if waived {
        return Ok(());
    }
    Err(refuse(state, rule, key, &decision, tenant, &meta).await)
}

/// The 429 answer, with its audit entry (throttled) and metric.
async fn refuse(
    state: &AppState,
    rule: &Rule,
    key: &str,
    decision: &Decision,
    tenant: Option<TenantId>,
    meta: &RequestMeta,
) -> Response {
    metrics::counter!("aegis_rate_limit_refusals_total", "rule" => rule.name.to_string())
        .increment(1);
    let window = Duration::from_micros(u64::try_from(decision.retry_after_us).unwrap_or(0))
        .max(Duration::from_secs(1));
    if let Some(t) = tenant
        && state.limit_audit.first(key, window)
    {
        let event = audit::event(
            t,
            meta,
            None,
            Action::RateLimited,
            format!("rate_limit:{}", rule.name),
            false,
            json!({"rule": &*rule.name, "key": rule.key.as_str(), "limit": rule.quota.limit, "period_secs": rule.period_secs}),
        );
        if let Err(e) = audit::record(state.store.as_ref(), &event).await {
            tracing::error!(error = %e, "recording a rate-limit refusal");
        }
    }
    let retry_after_secs = secs_ceil(decision.retry_after_us).max(1);
    let mut resp = ApiError::TooManyRequests { retry_after_secs }.into_response();
    if let Some(limits) = LimitHeaders::new(rule, decision) {
        limits.apply(rule, resp.headers_mut());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_read_from_json_and_normalised() {
        assert_eq!(
            account_in(br#"{"email":" Ada@Example.COM ","password":"x"}"#).as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(account_in(b"not json"), None);
        assert_eq!(account_in(br#"{"email": 5}"#), None);
    }

    #[test]
    fn ip_keys_are_written_as_displayed() {
        for ip in [
            "0.0.0.0",
            "198.51.100.7",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut key = String::new();
            push_ip(&mut key, ip);
            assert_eq!(key, ip.to_string());
        }
    }

    #[test]
    fn limit_headers_share_one_buffer_and_read_right() {
        use crate::ratelimit::config::RateLimitConfig;
        use crate::ratelimit::policy::Policy;
        let policy = Policy::from_config(&RateLimitConfig::default());
        let rule = policy
            .rules()
            .iter()
            .find(|r| &*r.name == "default")
            .unwrap();
        let decision = Decision {
            allowed: true,
            remaining: 117,
            reset_us: 1_500_000,
            retry_after_us: 0,
        };
        let mut h = HeaderMap::new();
        LimitHeaders::new(rule, &decision)
            .unwrap()
            .apply(rule, &mut h);
        assert_eq!(h["ratelimit"], "\"default\";r=117;t=2");
        assert_eq!(h["x-ratelimit-remaining"], "117");
        assert_eq!(h["x-ratelimit-reset"], "2");
        assert_eq!(h["x-ratelimit-limit"], rule.limit_header);
        assert_eq!(h["ratelimit-policy"], "\"default\";q=120;w=60");
        // A name too long for the in-place buffer: the same values.
        let mut cfg = RateLimitConfig::default();
        let long = "r".repeat(120);
        let mut r = crate::ratelimit::config::builtin_rules()["default"].clone();
        r.routes = vec!["GET /long".into()];
        cfg.rules.insert(long.clone(), r);
        let policy = Policy::from_config(&cfg);
        let rule = policy.rules().iter().find(|r| *r.name == *long).unwrap();
        let mut h = HeaderMap::new();
        LimitHeaders::new(rule, &decision)
            .unwrap()
            .apply(rule, &mut h);
        assert_eq!(h["ratelimit"], format!("\"{long}\";r=117;t=2").as_str());
        assert_eq!(h["x-ratelimit-remaining"], "117");
        assert_eq!(h["x-ratelimit-reset"], "2");
    }

    #[test]
    fn digests_hide_their_input() {
        let d = digest(&[b"tenant", b"ada@example.com"]);
        assert!(!d.contains("ada"));
        assert_eq!(d.len(), 22);
        assert_ne!(d, digest(&[b"tenant", b"bob@example.com"]));
    }

    #[test]
    fn audit_throttle_admits_one_per_window() {
        let t = AuditThrottle::default();
        assert!(t.first("k", Duration::from_secs(60)));
        assert!(!t.first("k", Duration::from_secs(60)));
        assert!(t.first("other", Duration::from_secs(60)));
    }
}

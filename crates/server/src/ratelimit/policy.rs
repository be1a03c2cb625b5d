//! Compiled rate-limit rules: which rules apply to a request, in evaluation order.

use std::sync::Arc;

use aegis_core::ratelimit::Quota;
use axum::http::{HeaderValue, Method};

use super::config::{KeyKind, RateLimitConfig};

/// A route pattern: an optional method and a path, exact or (with a trailing `*`) a
/// prefix; `*` alone matches everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePattern {
    method: Option<Method>,
    path: String,
    prefix: bool,
}

impl RoutePattern {
    pub fn parse(text: &str) -> Result<RoutePattern, &'static str> {
        let text = text.trim();
        let (method, path) = match text.split_once(' ') {
            Some((m, p)) => {
                let m = Method::from_bytes(m.as_bytes()).map_err(|_| "not a method")?;
                (Some(m), p.trim())
            }
            None => (None, text),
        };
        if path == "*" {
            return Ok(RoutePattern {
                method,
                path: String::new(),
                prefix: true,
            });
        }
        if !path.starts_with('/') {
            return Err("paths start with '/'");
        }
        let (path, prefix) = match path.strip_suffix('*') {
            Some(p) => (p, true),
            None => (path, false),
        };
        if path.contains('*') {
            return Err("'*' only at the end");
        }
        Ok(RoutePattern {
            method,
            path: path.to_string(),
            prefix,
        })
    }

    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        match (self.prefix, self.path.is_empty()) {
            (true, true) => true, // `*`
            (true, false) => path.starts_with(&self.path),
            (false, _) => path == self.path,
        }
    }
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: Arc<str>,
    pub key: KeyKind,
    pub quota: Quota,
    pub period_secs: u64,
    routes: Vec<RoutePattern>,
    /// Routes left alone although `routes` names them.
    except: Vec<RoutePattern>,
    /// `RateLimit-Policy` and `X-RateLimit-Limit` never change: built once, not per
    /// response.
    /// (`None` when the rule's name cannot appear in a header.)
    pub policy_header: Option<HeaderValue>,
    pub limit_header: HeaderValue,
    /// Position in the policy's evaluation order: identifies the rule in tables built
    /// from the policy (the answer header templates).
    pub index: usize,
}

fn patterns(routes: &[String]) -> Vec<RoutePattern> {
    routes
        .iter()
        .filter_map(|p| RoutePattern::parse(p).ok())
        .collect()
}

/// Every enabled rule, ordered for evaluation (IP rules first, account rules last).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    /// Compiles the effective rules; invalid routes were already reported by
    /// `RateLimitConfig::problems`, and are skipped here.
    pub fn from_config(cfg: &RateLimitConfig) -> Policy {
        let mut rules: Vec<Rule> = cfg
            .effective_rules()
            .into_iter()
            .map(|(name, r)| Rule {
                policy_header: HeaderValue::from_str(&format!(
                    "\"{name}\";q={};w={}",
                    r.limit, r.period_secs
                ))
                .ok(),
                limit_header: HeaderValue::from(r.limit),
                name: name.into(),
                key: r.key,
                quota: Quota {
                    burst: r.burst.unwrap_or(r.limit),
                    ..Quota::per(r.limit, r.period_secs)
                },
                period_secs: r.period_secs,
                index: 0,
                routes: patterns(&r.routes),
                except: patterns(&r.except),
            })
            .collect();
        rules.sort_by(|a, b| {
            (a.key.evaluation_rank(), &a.name).cmp(&(b.key.evaluation_rank(), &b.name))
        });
        for (index, rule) in rules.iter_mut().enumerate() {
            rule.index = index;
        }
        Policy { rules }
    }

    /// The rules that apply to a request, in evaluation order (an iterator: this runs
    /// for every request, and usually one rule matches).
    pub fn matching<'r>(
        &'r self,
        method: &Method,
        path: &str,
    ) -> impl Iterator<Item = &'r Rule> + Clone {
        self.rules.iter().filter(move |r| {
            r.routes.iter().any(|p| p.matches(method, path))
                && !r.except.iter().any(|p| p.matches(method, path))
        })
    }

    /// Every rule, in evaluation order (`rules()[r.index]` is `r`).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_method_and_path() {
        let login = RoutePattern::parse("POST /api/v1/login").unwrap();
        assert!(login.matches(&Method::POST, "/api/v1/login"));
        assert!(!login.matches(&Method::GET, "/api/v1/login"));
        assert!(!login.matches(&Method::POST, "/api/v1/login2"));
        let admin = RoutePattern::parse("/api/v1/admin/*").unwrap();
        assert!(admin.matches(&Method::DELETE, "/api/v1/admin/users"));
        assert!(!admin.matches(&Method::GET, "/api/v1/adminx"));
        let all = RoutePattern::parse("*").unwrap();
        assert!(all.matches(&Method::GET, "/anything"));
        assert!(RoutePattern::parse("api/v1").is_err());
        assert!(RoutePattern::parse("/a/*/b").is_err());
        assert!(RoutePattern::parse("P@ST /x").is_err());
    }

    #[test]
    fn builtin_login_rules_are_ordered_ip_first_account_last() {
        let policy = Policy::from_config(&RateLimitConfig::default());
        let names: Vec<&str> = policy
            .matching(&Method::POST, "/api/v1/login")
            .map(|r| &*r.name)
            .collect();
        assert_eq!(
            names,
            [
                "default",
                "login-ip",
                "login-ip-15m",
                "login-account-ip",
                "login-account",
                "login-account-15m"
            ]
        );
        // Every route is covered by at least the default rule.
        assert_eq!(policy.matching(&Method::GET, "/healthz").count(), 1);
    }

    #[test]
    fn the_default_rule_leaves_the_identity_checks_alone() {
        let policy = Policy::from_config(&RateLimitConfig::default());
        for path in ["/api/v1/session", "/api/v1/forward-auth"] {
            for method in [Method::GET, Method::HEAD, Method::POST] {
                assert_eq!(policy.matching(&method, path).count(), 0, "{method} {path}");
            }
        }
        for path in ["/api/v1/sessions", "/api/v1/session/x", "/api/v1/csrf"] {
            let names: Vec<&str> = policy
                .matching(&Method::GET, path)
                .map(|r| &*r.name)
                .collect();
            assert_eq!(names, ["default"], "{path}");
        }
        // An exception of a configured rule, and a bad one reported.
        let mut cfg = RateLimitConfig::default();
        let mut rule = super::super::config::builtin_rules()["admin-session"].clone();
        rule.except = vec!["GET /api/v1/audit".into()];
        cfg.rules.insert("admin-session".into(), rule.clone());
        let policy = Policy::from_config(&cfg);
        let admin =
            |m: &Method, p: &str| policy.matching(m, p).any(|r| &*r.name == "admin-session");
        assert!(!admin(&Method::GET, "/api/v1/audit"));
        assert!(admin(&Method::POST, "/api/v1/audit"));
        assert!(admin(&Method::GET, "/api/v1/admin/users"));
        rule.except = vec!["api/v1/audit".into()];
        cfg.rules.insert("admin-session".into(), rule);
        assert_eq!(
            cfg.problems(),
            ["rate_limit.rules.admin-session: route 'api/v1/audit': paths start with '/'"]
        );
    }

    #[test]
    fn configured_rules_override_and_disable_builtins() {
        let mut cfg = RateLimitConfig::default();
        let mut default = super::super::config::builtin_rules()["default"].clone();
        default.limit = 50;
        cfg.rules.insert("default".into(), default);
        let mut off = super::super::config::builtin_rules()["login-ip-15m"].clone();
        off.enabled = false;
        cfg.rules.insert("login-ip-15m".into(), off);
        let policy = Policy::from_config(&cfg);
        let rules: Vec<&Rule> = policy.matching(&Method::POST, "/api/v1/login").collect();
        assert_eq!(rules[0].quota.limit, 50);
        assert!(rules.iter().all(|r| &*r.name != "login-ip-15m"));
    }
}

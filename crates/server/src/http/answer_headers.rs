//! The headers of every answer: the security headers (and HSTS in production), then
//! what the frame adds per request (request id, rate limits, CORS), then the handler's
//! own, which win.
//!
//! The constant headers are inserted once, at start-up, into templates that answers
//! start from (one for answers no rate-limit rule applied to, one per rule with its
//! constant `RateLimit-Policy` and `X-RateLimit-Limit`): cloning a ready map costs a
//! fraction of hashing and placing eight names into every answer.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use super::ratelimit::constant_headers;
use crate::config::Mode;
use crate::ratelimit::policy::Rule;

/// Headers every response carries (unless a handler set its own).
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (header::CACHE_CONTROL, "no-store"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// In production, on top of the security headers.
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Headers a template's table is sized for: its own eight or nine, then what an answer
/// adds (request id, three rate-limit headers, CORS, the handler's few). 24 fills a
/// table of 32 to its load limit.
const CAPACITY: usize = 24;

/// The templates answers start from.
#[derive(Clone, Debug)]
pub struct AnswerHeaders {
    base: HeaderMap,
    /// `per_rule[rule.index]`: `base` plus the rule's constant headers.
    per_rule: Vec<HeaderMap>,
}

impl AnswerHeaders {
    /// Templates for `mode` and the rate-limit `rules` (in evaluation order).
    pub fn new(mode: Mode, rules: &[Rule]) -> AnswerHeaders {
        let mut base = HeaderMap::with_capacity(CAPACITY);
        for (name, value) in SECURITY_HEADERS {
            base.insert(name, HeaderValue::from_static(value));
        }
        if mode == Mode::Production {
            base.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
        let per_rule = rules
            .iter()
            .map(|rule| {
                let mut headers = base.clone();
                for (name, value) in constant_headers(rule) {
                    if let Some(value) = value {
                        headers.insert(name, value);
                    }
                }
                headers
            })
            .collect();
        AnswerHeaders { base, per_rule }
    }

    /// A fresh map holding the constant headers (those of `rule`, by index, when a
    /// rate-limit rule applies). The templates' tables are sized for the headers still
    /// to come, so an answer's map never needs rehashing.
    pub fn start(&self, rule: Option<usize>) -> HeaderMap {
        rule.and_then(|i| self.per_rule.get(i))
            .unwrap_or(&self.base)
            .clone()
    }
}

/// Moves a handler's headers onto `answer`. A name the handler set replaces what
/// `answer` has under it (a page with its own `Content-Security-Policy` keeps it),
/// except `Vary`, whose values add up. `Set-Cookie` values are marked sensitive on the
/// way, so debug output of the answer never shows a session token.
pub fn merge(answer: &mut HeaderMap, handler: HeaderMap) {
    // The map yields a name with its first value and `None` with each further one.
    let mut current: Option<HeaderName> = None;
    for (name, mut value) in handler {
        let first = name.is_some();
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = &current else {
            continue;
        };
        if *name == header::SET_COOKIE {
            value.set_sensitive(true);
        }
        if first && *name != header::VARY {
            answer.insert(name, value);
        } else {
            answer.append(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn template_has_the_security_headers_and_hsts_only_in_production() {
        let dev = AnswerHeaders::new(Mode::Development, &[]).start(None);
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(dev[&name], value);
        }
        assert!(dev.get(header::STRICT_TRANSPORT_SECURITY).is_none());
        let prod = AnswerHeaders::new(Mode::Production, &[]).start(None);
        assert_eq!(prod[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert_eq!(prod.len(), SECURITY_HEADERS.len() + 1);
    }

    #[test]
    fn rule_templates_add_the_rules_constant_headers() {
        use crate::ratelimit::config::RateLimitConfig;
        use crate::ratelimit::policy::Policy;
        let policy = Policy::from_config(&RateLimitConfig::default());
        let t = AnswerHeaders::new(Mode::Development, policy.rules());
        for rule in policy.rules() {
            let h = t.start(Some(rule.index));
            assert_eq!(h["x-ratelimit-limit"], rule.limit_header);
            assert_eq!(h.get("ratelimit-policy"), rule.policy_header.as_ref());
            assert_eq!(h["x-frame-options"], "DENY");
        }
        let h = t.start(None);
        assert!(h.get("x-ratelimit-limit").is_none());
        assert_eq!(
            t.start(Some(policy.rules().len())),
            h,
            "unknown index: the base"
        );
    }

    #[test]
    fn handler_headers_win_vary_adds_up_cookies_are_sensitive() {
        let mut answer = AnswerHeaders::new(Mode::Development, &[]).start(None);
        answer.insert(header::VARY, HeaderValue::from_static("origin"));
        answer.insert("x-request-id", HeaderValue::from_static("frame-id"));
        let mut handler = HeaderMap::new();
        handler.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        handler.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        handler.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        handler.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        handler.insert(header::VARY, HeaderValue::from_static("accept"));
        merge(&mut answer, handler);
        assert_eq!(
            values(&answer, "content-security-policy"),
            ["default-src 'self'"]
        );
        assert_eq!(values(&answer, "content-type"), ["text/html"]);
        assert_eq!(values(&answer, "set-cookie"), ["a=1", "b=2"]);
        assert!(
            answer
                .get_all(header::SET_COOKIE)
                .iter()
                .all(|v| v.is_sensitive())
        );
        assert_eq!(values(&answer, "vary"), ["origin", "accept"]);
        assert_eq!(values(&answer, "x-request-id"), ["frame-id"]);
        assert_eq!(values(&answer, "x-frame-options"), ["DENY"]);
    }
}

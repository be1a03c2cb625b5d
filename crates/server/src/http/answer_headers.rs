//! The headers of every answer: the security headers (and HSTS in production), then
//! what the frame adds per request (rate limits, request id), then the handler's own,
//! which win.
//!
//! Answers start from templates made once at start-up: one for answers no rate-limit
//! rule applied to and one per rule (with its constant `RateLimit-Policy` and
//! `X-RateLimit-Limit`), each in two shapes. The JSON shape is for a handler that
//! answered with exactly `Content-Type: application/json` and a `Content-Length`
//! (nearly every answer of the API); it carries the security headers OWASP's REST
//! Security Cheat Sheet names for API responses. The other shape, for everything else
//! (redirects, pages, text, images), adds the headers meant for documents
//! (`Referrer-Policy`, `Cross-Origin-Opener-Policy`) and a CSP that also pins
//! `base-uri` and `form-action`. A JSON answer is never a document that loads,
//! navigates or submits anything, and every header costs each answer its bytes.
//!
//! Cloning a ready map costs a fraction of hashing and placing a dozen names into
//! every answer. The values that change from answer to answer (the rate-limit trio,
//! the request id, the JSON answer's length) have their places in the template, after
//! its constants, and are written into them by position: a walk over the clone's
//! values, where an insert would hash the name and probe the table. Only a handler's
//! other headers are merged by name.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use super::ratelimit::{LimitHeaders, constant_headers, slot_names};
use super::request_id::X_REQUEST_ID;
use crate::config::Mode;
use crate::ratelimit::policy::Rule;

/// Headers every API (JSON) answer carries.
const API_HEADERS: [(HeaderName, &str); 4] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::CACHE_CONTROL, "no-store"),
];

/// Headers every other answer carries (unless its handler set its own).
const DOCUMENT_HEADERS: [(HeaderName, &str); 6] = [
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

/// The content type of the JSON shape.
const JSON: &str = "application/json";

/// Headers a template's table is sized for: its own (up to 16), then what an answer
/// may add (CORS, a handler's few). 24 fills a table of 32 to its load limit.
const CAPACITY: usize = 24;

/// A ready map: `constants` entries that every answer from it carries as they are,
/// then the slots, in the order [`fill`] fills them.
#[derive(Clone, Debug)]
struct Template {
    map: HeaderMap,
    constants: usize,
}

impl Template {
    /// The `security` headers (and HSTS in production), `rule`'s constant headers,
    /// then `extra`; then a placeholder under each of the rule's changing headers, the
    /// request id, and `extra_slots`.
    fn new(
        mode: Mode,
        security: &[(HeaderName, &'static str)],
        rule: Option<&Rule>,
        extra: &[(HeaderName, &'static str)],
        extra_slots: &[HeaderName],
    ) -> Template {
        let mut map = HeaderMap::with_capacity(CAPACITY);
        for (name, value) in security.iter().chain(extra) {
            map.insert(name, HeaderValue::from_static(value));
        }
        if mode == Mode::Production {
            map.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
        let mut slots = Vec::new();
        if let Some(rule) = rule {
            for (name, value) in constant_headers(rule) {
                if let Some(value) = value {
                    map.insert(name, value);
                }
            }
            slots = slot_names(rule);
        }
        let constants = map.len();
        slots.push(X_REQUEST_ID);
        for name in slots.iter().chain(extra_slots) {
            map.insert(name, HeaderValue::from_static(""));
        }
        Template { map, constants }
    }
}

/// The two shapes of a template (see the module doc).
#[derive(Clone, Debug)]
struct Shapes {
    json: Template,
    other: Template,
}

impl Shapes {
    fn new(mode: Mode, rule: Option<&Rule>) -> Shapes {
        Shapes {
            json: Template::new(
                mode,
                &API_HEADERS,
                rule,
                &[(header::CONTENT_TYPE, JSON)],
                &[header::CONTENT_LENGTH],
            ),
            other: Template::new(mode, &DOCUMENT_HEADERS, rule, &[], &[]),
        }
    }
}

/// The templates answers start from.
#[derive(Clone, Debug)]
pub struct AnswerHeaders {
    base: Shapes,
    /// `per_rule[rule.index]`: `base` plus the rule's headers.
    per_rule: Vec<Shapes>,
}

impl AnswerHeaders {
    /// Templates for `mode` and the rate-limit `rules` (in evaluation order).
    pub fn new(mode: Mode, rules: &[Rule]) -> AnswerHeaders {
        AnswerHeaders {
            base: Shapes::new(mode, None),
            per_rule: rules.iter().map(|r| Shapes::new(mode, Some(r))).collect(),
        }
    }

    /// The headers of an answer: the template for the rate-limit headers `limits`
    /// (none when no rule applied) in the shape of the `handler`'s headers, its slots
    /// filled with `limits`, `request_id` and the JSON answer's length, then the rest
    /// of the handler's headers merged by name.
    pub fn assemble(
        &self,
        limits: Option<LimitHeaders>,
        request_id: HeaderValue,
        handler: HeaderMap,
    ) -> HeaderMap {
        // A rule unknown to the templates (it cannot happen: both come from one
        // policy) shows no rate-limit headers rather than misplaced ones.
        let (shapes, limits) = match limits.map(|l| (self.per_rule.get(l.rule), l)) {
            Some((Some(shapes), limits)) => (shapes, Some(limits)),
            _ => (&self.base, None),
        };
        let length = json_length(&handler);
        let json = length.is_some();
        let template = if json { &shapes.json } else { &shapes.other };
        let mut answer = template.map.clone();
        fill(&mut answer, template.constants, limits, request_id, length);
        if !json {
            merge(&mut answer, handler);
        }
        answer
    }
}

/// The `Content-Length` of a handler's headers in the JSON shape: exactly a
/// `Content-Type: application/json` and a `Content-Length`.
fn json_length(handler: &HeaderMap) -> Option<HeaderValue> {
    if handler.len() != 2 {
        return None;
    }
    let mut json = false;
    let mut length = None;
    for (name, value) in handler {
        if name == header::CONTENT_TYPE {
            json = value.as_bytes() == JSON.as_bytes();
        } else if name == header::CONTENT_LENGTH {
            length = Some(value.clone());
        }
    }
    length.filter(|_| json)
}

/// Writes the slot values into a clone of a template whose slots follow its first
/// `constants` values: the rate-limit headers (if the template has their slots), the
/// request id, then the JSON answer's length (if it has its slot).
fn fill(
    answer: &mut HeaderMap,
    constants: usize,
    limits: Option<LimitHeaders>,
    request_id: HeaderValue,
    length: Option<HeaderValue>,
) {
    let mut slots = answer.values_mut().skip(constants);
    let mut put = |value| {
        if let Some(slot) = slots.next() {
            *slot = value;
        }
    };
    if let Some(limits) = limits {
        let (current, remaining, reset) = limits.into_values();
        if let Some(current) = current {
            put(current);
        }
        put(remaining);
        put(reset);
    }
    put(request_id);
    if let Some(length) = length {
        put(length);
    }
}

/// Moves a handler's headers onto `answer`. A name the handler set replaces what
/// `answer` has under it (a page with its own `Content-Security-Policy` keeps it),
/// except `Vary`, whose values add up. `Set-Cookie` values are marked sensitive on the
/// way, so debug output of the answer never shows a session token.
fn merge(answer: &mut HeaderMap, handler: HeaderMap) {
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
    use crate::ratelimit::config::RateLimitConfig;
    use crate::ratelimit::policy::Policy;
    use aegis_core::ratelimit::Decision;

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    fn json_handler(length: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        h
    }

    fn id(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    fn decision(remaining: u32) -> Decision {
        Decision {
            allowed: true,
            remaining,
            reset_us: 1_500_000,
            retry_after_us: 0,
        }
    }

    #[test]
    fn api_headers_on_json_document_headers_on_the_rest_hsts_only_in_production() {
        let dev = AnswerHeaders::new(Mode::Development, &[]);
        let h = dev.assemble(None, id("r-1"), json_handler(2));
        for (name, value) in API_HEADERS {
            assert_eq!(values(&h, name.as_str()), [value]);
        }
        assert!(h.get(header::REFERRER_POLICY).is_none());
        let h = dev.assemble(None, id("r-1"), HeaderMap::new());
        for (name, value) in DOCUMENT_HEADERS {
            assert_eq!(values(&h, name.as_str()), [value]);
        }
        for handler in [json_handler(2), HeaderMap::new()] {
            let h = dev.assemble(None, id("r-1"), handler);
            assert!(h.get(header::STRICT_TRANSPORT_SECURITY).is_none());
            assert_eq!(values(&h, "x-request-id"), ["r-1"]);
            assert!(h.get("x-ratelimit-limit").is_none());
        }
        let prod = AnswerHeaders::new(Mode::Production, &[]);
        let h = prod.assemble(None, id("r-2"), HeaderMap::new());
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert_eq!(h.len(), DOCUMENT_HEADERS.len() + 2, "{h:?}");
        let h = prod.assemble(None, id("r-2"), json_handler(2));
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert_eq!(h.len(), API_HEADERS.len() + 4, "{h:?}");
    }

    /// Every slot of every template gets its own value, under its own name, in both
    /// shapes, for every rule of the default policy (with and without the IETF pair).
    #[test]
    fn slots_are_filled_by_position_under_the_right_names() {
        let policy = Policy::from_config(&RateLimitConfig::default());
        let t = AnswerHeaders::new(Mode::Production, policy.rules());
        for rule in policy.rules() {
            for json in [true, false] {
                let limits = LimitHeaders::new(rule, &decision(117));
                assert!(limits.is_some());
                let handler = if json {
                    json_handler(42)
                } else {
                    HeaderMap::new()
                };
                let h = t.assemble(limits, id("r-3"), handler);
                assert_eq!(
                    values(&h, "x-ratelimit-limit"),
                    [rule.limit_header.to_str().unwrap()]
                );
                assert_eq!(values(&h, "x-ratelimit-remaining"), ["117"]);
                assert_eq!(values(&h, "x-ratelimit-reset"), ["2"]);
                match &rule.policy_header {
                    Some(p) => {
                        assert_eq!(h["ratelimit-policy"], p);
                        assert_eq!(
                            values(&h, "ratelimit"),
                            [format!("\"{}\";r=117;t=2", rule.name)]
                        );
                    }
                    None => assert!(h.get("ratelimit").is_none()),
                }
                assert_eq!(values(&h, "x-request-id"), ["r-3"]);
                assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], HSTS);
                if json {
                    assert_eq!(values(&h, "content-type"), [JSON]);
                    assert_eq!(values(&h, "content-length"), ["42"]);
                } else {
                    assert!(h.get(header::CONTENT_TYPE).is_none());
                    assert!(h.get(header::CONTENT_LENGTH).is_none());
                }
                assert!(
                    h.iter().all(|(_, v)| !v.is_empty()),
                    "a slot left empty: {h:?}"
                );
            }
        }
    }

    #[test]
    fn only_exactly_json_answers_take_the_json_shape() {
        assert!(json_length(&json_handler(7)).is_some());
        let mut text = json_handler(7);
        text.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(json_length(&text).is_none());
        let mut more = json_handler(7);
        more.insert(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        assert!(json_length(&more).is_none());
        let t = AnswerHeaders::new(Mode::Development, &[]);
        let h = t.assemble(None, id("r-4"), text);
        assert_eq!(values(&h, "content-type"), ["text/plain"]);
        assert_eq!(values(&h, "content-length"), ["7"]);
        let h = t.assemble(None, id("r-4"), more);
        assert_eq!(values(&h, "content-type"), [JSON]);
        assert_eq!(values(&h, "set-cookie"), ["a=1"]);
    }

    #[test]
    fn handler_headers_win_vary_adds_up_cookies_are_sensitive() {
        let t = AnswerHeaders::new(Mode::Development, &[]);
        let mut handler = HeaderMap::new();
        handler.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        handler.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        handler.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        handler.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        handler.insert(header::VARY, HeaderValue::from_static("accept"));
        let mut answer = t.assemble(None, id("frame-id"), HeaderMap::new());
        answer.insert(header::VARY, HeaderValue::from_static("origin"));
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

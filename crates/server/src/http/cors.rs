//! CORS for the configured origins (`cors.allowed_origins`): preflights are answered
//! here, and answers to allowed origins carry the `Access-Control-*` headers.
//!
//! Our own few lines rather than a tower layer: every header value is built once at
//! start-up, and a request without an `Origin` header (every server-to-server call and
//! every forward-auth check) costs one header lookup and a `Vary`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::config::CorsConfig;

/// Methods a preflight may ask for.
const METHODS: &str = "GET,POST,PUT,PATCH,DELETE";
/// Request headers a preflight may ask for.
const ALLOW_HEADERS: &str = "content-type,authorization,x-csrf-token,x-request-id";
/// Response headers browsers may show to scripts: the request id and the rate limits.
const EXPOSE_HEADERS: &str = "x-request-id,ratelimit,ratelimit-policy,x-ratelimit-limit,x-ratelimit-remaining,x-ratelimit-reset,retry-after";
/// Preflight answers differ by these request headers.
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";
/// Other answers differ only by the `Origin` (the `Access-Control-Request-*` headers
/// are preflight headers and change nothing else).
const VARY_ORIGIN: &str = "origin";

/// The CORS policy, ready to apply.
#[derive(Clone, Debug)]
pub struct Cors {
    /// Exact origins allowed (compared byte for byte with the `Origin` header).
    origins: Vec<HeaderValue>,
    /// `*` in the list without credentials: every origin, answered with `*`.
    any: bool,
    credentials: bool,
    max_age: HeaderValue,
}

impl Cors {
    pub fn from_config(c: &CorsConfig) -> Cors {
        Cors {
            origins: c
                .allowed_origins
                .iter()
                .filter(|o| o.as_str() != "*")
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            any: c.allowed_origins.iter().any(|o| o == "*") && !c.allow_credentials,
            credentials: c.allow_credentials,
            max_age: HeaderValue::from(c.max_age_secs),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        self.origins
            .iter()
            .any(|o| o == origin)
            .then(|| origin.clone())
    }

    /// Whether a request is a preflight (answered here, never passed on).
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        *method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The headers of a preflight answer.
    pub fn preflight(&self, request: &HeaderMap, answer: &mut HeaderMap) {
        answer.insert(header::VARY, HeaderValue::from_static(VARY));
        if !self.allow(request.get(header::ORIGIN), answer) {
            return;
        }
        answer.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        answer.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        answer.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
    }

    /// Whether any origin is allowed. Without, no answer depends on the `Origin`.
    pub fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// Adds the CORS headers to an ordinary answer to a request from `origin`: with
    /// CORS enabled, `Vary: origin` on every answer (caches must not serve one origin's
    /// answer to another), and the `Access-Control-*` headers for an allowed origin.
    pub fn decorate(&self, origin: Option<&HeaderValue>, answer: &mut HeaderMap) {
        if !self.enabled() {
            return;
        }
        answer.append(header::VARY, HeaderValue::from_static(VARY_ORIGIN));
        if self.allow(origin, answer) {
            answer.insert(EXPOSE, HeaderValue::from_static(EXPOSE_HEADERS));
        }
    }

    /// Adds `Access-Control-Allow-Origin` (and `-Credentials`) when `origin` is allowed;
    /// whether it was.
    fn allow(&self, origin: Option<&HeaderValue>, answer: &mut HeaderMap) -> bool {
        let Some(origin) = self.allow_origin(origin) else {
            return false;
        };
        answer.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials && !self.any {
            answer.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        true
    }
}

const EXPOSE: HeaderName = header::ACCESS_CONTROL_EXPOSE_HEADERS;

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors::from_config(&CorsConfig {
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            allow_credentials: credentials,
            max_age_secs: 600,
        })
    }

    fn origin(o: &str) -> HeaderValue {
        HeaderValue::from_str(o).unwrap()
    }

    #[test]
    fn listed_origins_only() {
        let c = cors(&["https://app.example.com"], true);
        let mut h = HeaderMap::new();
        c.decorate(Some(&origin("https://app.example.com")), &mut h);
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert!(h[EXPOSE].to_str().unwrap().contains("ratelimit"));
        let mut h = HeaderMap::new();
        c.decorate(Some(&origin("https://evil.example")), &mut h);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert_eq!(h[header::VARY], VARY_ORIGIN);
        let mut h = HeaderMap::new();
        c.decorate(None, &mut h);
        assert_eq!(h[header::VARY], VARY_ORIGIN);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[test]
    fn nothing_without_allowed_origins() {
        let c = cors(&[], true);
        assert!(!c.enabled());
        let mut h = HeaderMap::new();
        c.decorate(Some(&origin("https://app.example.com")), &mut h);
        assert!(h.is_empty(), "no Vary, no Access-Control-*: {h:?}");
    }

    #[test]
    fn wildcard_without_credentials() {
        let c = cors(&["*"], false);
        let mut h = HeaderMap::new();
        c.decorate(Some(&origin("https://any.example")), &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        // With credentials a wildcard allows nothing (and config check refuses it).
        let c = cors(&["*"], true);
        let mut h = HeaderMap::new();
        c.decorate(Some(&origin("https://any.example")), &mut h);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[test]
    fn preflight_answers() {
        let c = cors(&["https://app.example.com"], true);
        let mut req = HeaderMap::new();
        req.insert(header::ORIGIN, origin("https://app.example.com"));
        req.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        assert!(Cors::is_preflight(&Method::OPTIONS, &req));
        assert!(!Cors::is_preflight(&Method::GET, &req));
        let mut h = HeaderMap::new();
        c.preflight(&req, &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], METHODS);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_HEADERS], ALLOW_HEADERS);
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[header::VARY], VARY);
    }
}

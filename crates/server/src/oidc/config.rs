//! The `[oidc]` configuration section. Providers themselves are per tenant and live in
//! the database (admin API and `aegis oidc`); this section holds what is common to all.

use serde::{Deserialize, Serialize};

/// Settings shared by every provider of every tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSection {
    /// Origins (besides this site's own paths) that `return_to` may send the browser to.
    pub return_to_origins: Vec<String>,
    /// How long a started sign-in may take, and the lifetime of its browser cookie.
    pub state_ttl_secs: u64,
    /// Tolerated clock difference with providers when checking ID token times.
    pub clock_skew_secs: u64,
    /// Longest wait for any single call to a provider.
    pub http_timeout_secs: u64,
    /// How long a discovery document is reused.
    pub metadata_ttl_secs: u64,
    /// How long a JWKS is reused (an unknown key id refreshes it sooner).
    pub jwks_ttl_secs: u64,
    /// Consecutive failed calls that open a provider's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before probing the provider again.
    pub breaker_open_secs: u64,
}

impl Default for OidcSection {
    fn default() -> Self {
        OidcSection {
            return_to_origins: Vec::new(),
            state_ttl_secs: 600,
            clock_skew_secs: 60,
            http_timeout_secs: 10,
            metadata_ttl_secs: 3600,
            jwks_ttl_secs: 3600,
            breaker_failures: 5,
            breaker_open_secs: 30,
        }
    }
}

impl OidcSection {
    /// Problems with these settings, one line each.
    pub fn problems(&self, is_origin: impl Fn(&str) -> bool) -> Vec<String> {
        let mut p = Vec::new();
        for o in &self.return_to_origins {
            if !is_origin(o) {
                p.push(format!(
                    "oidc.return_to_origins: '{o}' is not an origin like https://app.example.com"
                ));
            }
        }
        if !(60..=3600).contains(&self.state_ttl_secs) {
            p.push("oidc.state_ttl_secs: must be 60..=3600".into());
        }
        if self.clock_skew_secs > 600 {
            p.push("oidc.clock_skew_secs: at most 600".into());
        }
        if !(1..=120).contains(&self.http_timeout_secs) {
            p.push("oidc.http_timeout_secs: must be 1..=120".into());
        }
        p
    }
}

//! The session cookie: `__Host-aegis_session`, HttpOnly, Secure, SameSite, Path=/.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::config::{SameSite, SessionConfig};

/// Cookie name when `Secure` is on (the `__Host-` prefix requires it).
pub const SECURE_NAME: &str = "__Host-aegis_session";
/// Cookie name when `Secure` was explicitly turned off for local development.
pub const INSECURE_NAME: &str = "aegis_session";

/// How session cookies are written.
#[derive(Clone, Debug)]
pub struct CookieSettings {
    pub name: &'static str,
    pub secure: bool,
    pub same_site: &'static str,
    pub max_age_secs: u64,
}

impl CookieSettings {
    pub fn from_config(s: &SessionConfig) -> Self {
        CookieSettings {
            name: if s.cookie_secure {
                SECURE_NAME
            } else {
                INSECURE_NAME
            },
            secure: s.cookie_secure,
            same_site: match s.cookie_same_site {
                SameSite::Strict => "Strict",
                SameSite::Lax => "Lax",
            },
            max_age_secs: s.absolute_lifetime_secs,
        }
    }

    fn attributes(&self, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "; Path=/; Max-Age={max_age}; HttpOnly{secure}; SameSite={}",
            self.same_site
        )
    }

    /// `Set-Cookie` value carrying a new session token.
    pub fn set(&self, token: &str) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}={token}{}",
            self.name,
            self.attributes(self.max_age_secs)
        ))
        .ok()
    }

    /// `Set-Cookie` value that deletes the cookie.
    pub fn clear(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!("{}={}", self.name, self.attributes(0))).ok()
    }

    /// The session token from the request's `Cookie` headers, if any.
    pub fn read<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == self.name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
    }
}

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

    fn attributes(&self, max_age: u64, same_site: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("; Path=/; Max-Age={max_age}; HttpOnly{secure}; SameSite={same_site}")
    }

    /// `Set-Cookie` value carrying a new session token.
    pub fn set(&self, token: &str) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}={token}{}",
            self.name,
            self.attributes(self.max_age_secs, self.same_site)
        ))
        .ok()
    }

    /// `Set-Cookie` value that deletes the cookie.
    pub fn clear(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}={}",
            self.name,
            self.attributes(0, self.same_site)
        ))
        .ok()
    }

    /// The session token from the request's `Cookie` headers, if any.
    pub fn read<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        read_named(headers, self.name)
    }

    /// The name of the cookie that binds one provider sign-in to this browser.
    pub fn flow_name(&self, suffix: &str) -> String {
        let prefix = if self.secure { "__Host-" } else { "" };
        format!("{prefix}aegis_oidc_{suffix}")
    }

    /// `Set-Cookie` for a sign-in flow cookie. Always `SameSite=Lax`: the provider's
    /// redirect back is a cross-site navigation, which `Strict` would strip it from.
    pub fn flow_set(&self, suffix: &str, value: &str, max_age: u64) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}={value}{}",
            self.flow_name(suffix),
            self.attributes(max_age, "Lax")
        ))
        .ok()
    }

    /// `Set-Cookie` that deletes a sign-in flow cookie.
    pub fn flow_clear(&self, suffix: &str) -> Option<HeaderValue> {
        self.flow_set(suffix, "", 0)
    }

    /// A sign-in flow cookie's value.
    pub fn flow_read<'a>(&self, headers: &'a HeaderMap, suffix: &str) -> Option<&'a str> {
        read_named(headers, &self.flow_name(suffix))
    }
}

/// The value of the cookie `name` in the request's `Cookie` headers, if any: the first
/// pair of that name, unless its value is empty. Headers with anything but visible
/// ASCII, space and tab are skipped; the pairs of the others are ASCII, so trimming
/// ASCII whitespace is trimming all of it.
fn read_named<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for pair in text.split(';') {
            let pair = pair.trim_ascii();
            if let Some(value) = pair.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Some(value).filter(|v| !v.is_empty());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn finds_the_named_cookie() {
        let h = cookies(&[b"a=1; aegis_session=tok=en ;b=2"]);
        assert_eq!(read_named(&h, "aegis_session"), Some("tok=en"));
        assert_eq!(read_named(&h, "a"), Some("1"));
        assert_eq!(read_named(&h, "b"), Some("2"));
        assert_eq!(
            read_named(&h, "aegis"),
            None,
            "a prefix of a name is not the name"
        );
        assert_eq!(read_named(&h, "c"), None);
        // The first pair of the name decides, also across headers.
        let h = cookies(&[b"x=; y=2", b"x=3"]);
        assert_eq!(read_named(&h, "x"), None);
        let h = cookies(&[b"y=2", b"x=3", b"x=4"]);
        assert_eq!(read_named(&h, "x"), Some("3"));
        // Names are exact: no spaces before '=', no case folding.
        let h = cookies(&[b"x =1; X=2"]);
        assert_eq!(read_named(&h, "x"), None);
        // A header that is not visible ASCII is skipped as a whole.
        let h = cookies(&[b"x=\xff1", b"x=5"]);
        assert_eq!(read_named(&h, "x"), Some("5"));
    }
}

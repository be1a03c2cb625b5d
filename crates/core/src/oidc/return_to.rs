//! Where the browser may be sent after signing in: a path on this site, or a URL on one
//! of the configured origins. Anything else is refused (no open redirect).

use crate::{CoreError, Result};

/// Longest accepted `return_to`.
const MAX_LEN: usize = 2048;

/// Checks `return_to` against `allowed_origins` (`https://app.example.com`, no trailing
/// slash). Empty means `/`. Returns the value to redirect to.
pub fn check_return_to(return_to: Option<&str>, allowed_origins: &[String]) -> Result<String> {
    let refused = || {
        CoreError::Invalid(
            "return_to: must be a path on this site or a URL on a configured origin (oidc.return_to_origins)".into(),
        )
    };
    let value = match return_to {
        None | Some("") => return Ok("/".into()),
        Some(v) => v,
    };
    if value.len() > MAX_LEN
        || value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(refused());
    }
    if value.starts_with('/') {
        // `//host` is a network-path reference to another site.
        if value.starts_with("//") {
            return Err(refused());
        }
        return Ok(value.to_string());
    }
    let (scheme, rest) = value.split_once("://").ok_or_else(refused)?;
    if !matches!(scheme, "https" | "http") {
        return Err(refused());
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.is_empty() || authority.contains('@') {
        return Err(refused());
    }
    let origin = format!("{scheme}://{authority}");
    if allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&origin))
    {
        Ok(value.to_string())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_listed_origins_only() {
        let allowed = vec!["https://app.example.com".to_string()];
        let ok = |v: &str| check_return_to(Some(v), &allowed).unwrap();
        let bad = |v: &str| check_return_to(Some(v), &allowed).is_err();
        assert_eq!(check_return_to(None, &allowed).unwrap(), "/");
        assert_eq!(ok("/dashboard?tab=1"), "/dashboard?tab=1");
        assert_eq!(
            ok("https://app.example.com/x#frag"),
            "https://app.example.com/x#frag"
        );
        assert_eq!(ok("https://APP.example.com"), "https://APP.example.com");
        assert!(bad("https://evil.example.com/"));
        assert!(bad("https://app.example.com.evil.example/"));
        assert!(bad("https://app.example.com@evil.example/"));
        assert!(
            bad("http://app.example.com/"),
            "scheme is part of the origin"
        );
        assert!(bad("https://app.example.com:444/"));
        assert!(bad("//evil.example/"));
        assert!(bad("/\\evil.example"));
        assert!(bad("javascript:alert(1)"));
        assert!(bad("evil.example"));
        assert!(bad("/ok\r\nSet-Cookie: x=y"));
        assert!(bad(&format!("/{}", "a".repeat(3000))));
    }
}

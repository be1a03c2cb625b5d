//! The outbound side of a sign-in: what Aegis asks of a provider, as a trait the server
//! implements over HTTP (with timeouts, caching and a circuit breaker), plus the pure
//! parts that need no network: discovery checks and `private_key_jwt` assertions.

use std::sync::Arc;

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde::Deserialize;

use crate::crypto::random_token;

use super::OidcProvider;

/// The parts of a provider's discovery document Aegis uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the provider adds `iss` to its authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

fn endpoint_ok(url: &str, allow_http: bool) -> bool {
    url.starts_with("https://") || (allow_http && url.starts_with("http://"))
}

impl ProviderMetadata {
    /// Checks the document belongs to `issuer` (exact match, OpenID Connect Discovery
    /// 4.3) and its endpoints use https (http only when `allow_http`).
    pub fn check(&self, issuer: &str, allow_http: bool) -> Result<(), String> {
        if self.issuer != issuer {
            return Err(format!(
                "discovery document names issuer {:?}, expected {issuer:?}",
                self.issuer.chars().take(200).collect::<String>()
            ));
        }
        let mut endpoints = vec![
            (
                "authorization_endpoint",
                self.authorization_endpoint.as_str(),
            ),
            ("token_endpoint", self.token_endpoint.as_str()),
            ("jwks_uri", self.jwks_uri.as_str()),
        ];
        if let Some(u) = &self.userinfo_endpoint {
            endpoints.push(("userinfo_endpoint", u.as_str()));
        }
        for (name, url) in endpoints {
            if !endpoint_ok(url, allow_http) {
                return Err(format!("discovery: {name} must be an https URL"));
            }
        }
        if let Some(methods) = &self.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err("discovery: the provider does not support PKCE S256".into());
        }
        Ok(())
    }
}

/// How the client proves itself at the token endpoint.
pub enum ClientCredentials {
    Basic(SecretString),
    Post(SecretString),
    /// A signed `private_key_jwt` assertion.
    Assertion(String),
}

/// An authorization code exchange.
pub struct TokenRequest {
    pub token_endpoint: String,
    pub code: String,
    pub code_verifier: String,
    pub redirect_uri: String,
    pub client_id: String,
    pub credentials: ClientCredentials,
}

/// The token endpoint's answer (the parts Aegis uses).
#[derive(Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub access_token: Option<SecretString>,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
}

/// Why a call to a provider failed.
#[derive(Debug)]
pub enum IdpError {
    /// Unreachable, timed out, 5xx, or circuit open: try again later.
    Unavailable(String),
    /// The provider refused the request (4xx); carries the OAuth `error` code only.
    Rejected(String),
    /// The provider answered, but not with something usable.
    Invalid(String),
}

impl std::fmt::Display for IdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdpError::Unavailable(m) => write!(f, "provider unavailable: {m}"),
            IdpError::Rejected(m) => write!(f, "provider refused: {m}"),
            IdpError::Invalid(m) => write!(f, "provider answer unusable: {m}"),
        }
    }
}

/// Calls to a provider. Implementations bound every call in time, keep redirects off,
/// cache discovery and JWKS, and fail fast while a provider's circuit is open.
#[async_trait]
pub trait IdpClient: Send + Sync {
    /// The provider's (cached) discovery document, checked against its issuer.
    async fn metadata(&self, provider: &OidcProvider) -> Result<Arc<ProviderMetadata>, IdpError>;
    /// The provider's (cached) JWKS; `refresh` asks for a fresh copy (an ID token named
    /// a key the cached set does not have: the provider may have rotated its keys).
    async fn jwks(
        &self,
        provider: &OidcProvider,
        jwks_uri: &str,
        refresh: bool,
    ) -> Result<Arc<JwkSet>, IdpError>;
    /// Exchanges an authorization code at the token endpoint.
    async fn exchange_code(
        &self,
        provider: &OidcProvider,
        request: TokenRequest,
    ) -> Result<TokenResponse, IdpError>;
    /// Reads the userinfo endpoint with the access token.
    async fn userinfo(
        &self,
        provider: &OidcProvider,
        endpoint: &str,
        access_token: &SecretString,
    ) -> Result<serde_json::Value, IdpError>;
}

/// Parses a `private_key_jwt` signing key: a PKCS#8 EC P-256 key (ES256) or an RSA key
/// (RS256), and proves it signs.
pub fn signing_key(pem: &str) -> Result<(EncodingKey, Algorithm), String> {
    let candidates = [
        (EncodingKey::from_ec_pem(pem.as_bytes()), Algorithm::ES256),
        (EncodingKey::from_rsa_pem(pem.as_bytes()), Algorithm::RS256),
    ];
    for (key, alg) in candidates {
        if let Ok(key) = key
            && jsonwebtoken::crypto::sign(b"aegis key check", &key, alg).is_ok()
        {
            return Ok((key, alg));
        }
    }
    Err("not a PKCS#8 EC P-256 or RSA private key in PEM".into())
}

/// A `private_key_jwt` client assertion (RFC 7523): issuer and subject are the client
/// id, valid for 60 seconds, single-use `jti`.
pub fn client_assertion(
    client_id: &str,
    audience: &str,
    pem: &str,
    key_id: Option<&str>,
    now_secs: i64,
) -> Result<String, String> {
    let (key, alg) = signing_key(pem)?;
    let mut header = Header::new(alg);
    header.kid = key_id.map(str::to_string);
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": random_token().map_err(|e| e.to_string())?,
        "iat": now_secs,
        "exp": now_secs + 60,
    });
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("client assertion: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(issuer: &str) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "code_challenge_methods_supported": ["S256"],
        }))
        .unwrap()
    }

    #[test]
    fn discovery_must_name_the_configured_issuer() {
        assert!(
            meta("https://idp.example")
                .check("https://idp.example", false)
                .is_ok()
        );
        assert!(
            meta("https://evil.example")
                .check("https://idp.example", false)
                .is_err()
        );
        assert!(
            meta("http://idp.example")
                .check("http://idp.example", false)
                .is_err()
        );
        assert!(
            meta("http://idp.example")
                .check("http://idp.example", true)
                .is_ok()
        );
        let mut no_pkce = meta("https://idp.example");
        no_pkce.code_challenge_methods_supported = Some(vec!["plain".into()]);
        assert!(no_pkce.check("https://idp.example", false).is_err());
    }

    #[test]
    fn assertion_is_signed_with_the_client_key() {
        let jwt = client_assertion(
            "aegis",
            "https://idp.example/token",
            super::super::idtoken::tests::TEST_EC_PEM,
            Some("c1"),
            1_700_000_000,
        )
        .unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("c1"));
        assert!(signing_key("not a key").is_err());
    }
}

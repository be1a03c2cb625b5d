//! The HTTP side of talking to identity providers: one reqwest client with redirects
//! off and a timeout on every call, discovery and JWKS caches, and a circuit breaker
//! per provider so a dead provider answers fast instead of holding requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_core::oidc::{
    ClientCredentials, IdpClient, IdpError, JwkSet, OidcProvider, ProviderMetadata, TokenRequest,
    TokenResponse,
};
use async_trait::async_trait;
use base64::Engine;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::OidcSection;
use crate::breaker::CircuitBreaker;

/// Largest provider answer read (discovery, JWKS, tokens, userinfo).
const MAX_BODY: usize = 1 << 20;

/// A cached value and when it was fetched.
type Cached<T> = (Instant, Arc<T>);

/// Talks to providers over HTTP(S).
pub struct HttpIdpClient {
    http: reqwest::Client,
    allow_http: bool,
    metadata_ttl: Duration,
    jwks_ttl: Duration,
    breaker_failures: u32,
    breaker_open: Duration,
    /// Keyed by provider id and issuer, so a changed issuer is rediscovered at once.
    metadata: Mutex<HashMap<(Uuid, String), Cached<ProviderMetadata>>>,
    jwks: Mutex<HashMap<(Uuid, String), Cached<JwkSet>>>,
    /// One JWKS refresh at a time: after a key rotation many sign-ins see the new key
    /// id at once, and one fetch serves them all.
    jwks_refresh: tokio::sync::Mutex<()>,
    breakers: Mutex<HashMap<Uuid, Arc<CircuitBreaker>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HttpIdpClient {
    /// `allow_http`: development mode, where plain-http providers are accepted.
    pub fn new(cfg: &OidcSection, allow_http: bool) -> Result<HttpIdpClient, String> {
        let timeout = Duration::from_secs(cfg.http_timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .https_only(!allow_http)
            .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("oidc http client: {e}"))?;
        Ok(HttpIdpClient {
            http,
            allow_http,
            metadata_ttl: Duration::from_secs(cfg.metadata_ttl_secs),
            jwks_ttl: Duration::from_secs(cfg.jwks_ttl_secs),
            breaker_failures: cfg.breaker_failures,
            breaker_open: Duration::from_secs(cfg.breaker_open_secs),
            metadata: Mutex::default(),
            jwks: Mutex::default(),
            jwks_refresh: tokio::sync::Mutex::new(()),
            breakers: Mutex::default(),
        })
    }

    fn breaker(&self, provider: Uuid) -> Arc<CircuitBreaker> {
        lock(&self.breakers)
            .entry(provider)
            .or_insert_with(|| {
                Arc::new(CircuitBreaker::new(
                    self.breaker_failures,
                    self.breaker_open,
                ))
            })
            .clone()
    }

    /// Sends a request through the provider's breaker; a provider that does not
    /// answer, or answers 5xx, counts as a failure.
    async fn send(
        &self,
        provider: &OidcProvider,
        what: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), IdpError> {
        let breaker = self.breaker(provider.id);
        if !breaker.allow() {
            metrics::counter!("aegis_oidc_provider_errors_total", "reason" => "circuit_open")
                .increment(1);
            return Err(IdpError::Unavailable(format!("{what}: circuit open")));
        }
        let result = async {
            let mut resp = request.send().await.map_err(|e| {
                let reason = if e.is_timeout() { "timeout" } else { "connect" };
                (reason, format!("{what}: {}", without_url(&e)))
            })?;
            let status = resp.status();
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| ("read", format!("{what}: {}", without_url(&e))))?
            {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(("too_large", format!("{what}: answer over {MAX_BODY} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            if status.is_server_error() {
                return Err(("server_error", format!("{what}: HTTP {status}")));
            }
            Ok((status, body))
        }
        .await;
        breaker.record(result.is_ok());
        result.map_err(|(reason, msg)| {
            metrics::counter!("aegis_oidc_provider_errors_total", "reason" => reason).increment(1);
            IdpError::Unavailable(msg)
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        provider: &OidcProvider,
        what: &'static str,
        url: &str,
    ) -> Result<T, IdpError> {
        let req = self.http.get(url).header("accept", "application/json");
        let (status, body) = self.send(provider, what, req).await?;
        if !status.is_success() {
            return Err(IdpError::Invalid(format!("{what}: HTTP {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| IdpError::Invalid(format!("{what}: {e}")))
    }

    fn fresh<T>(
        map: &Mutex<HashMap<(Uuid, String), Cached<T>>>,
        key: &(Uuid, String),
        ttl: Duration,
    ) -> Option<Arc<T>> {
        lock(map)
            .get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }
}

/// A reqwest error's text without the URL (it may carry query parameters).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    if let Some(source) = std::error::Error::source(e) {
        text = format!("{text}: {source}");
    }
    text
}

/// RFC 6749 2.3.1: Basic credentials are form-encoded before base64.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The OAuth `error` code of a refusal, bounded and plain.
fn oauth_error(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

#[async_trait]
impl IdpClient for HttpIdpClient {
    async fn metadata(&self, provider: &OidcProvider) -> Result<Arc<ProviderMetadata>, IdpError> {
        let key = (provider.id, provider.settings.issuer.clone());
        if let Some(hit) = Self::fresh(&self.metadata, &key, self.metadata_ttl) {
            return Ok(hit);
        }
        // OpenID Connect Discovery 4: the issuer's trailing slash is not doubled.
        let url = format!(
            "{}/.well-known/openid-configuration",
            provider.settings.issuer.trim_end_matches('/')
        );
        let doc: ProviderMetadata = self.get_json(provider, "discovery", &url).await?;
        doc.check(&provider.settings.issuer, self.allow_http)
            .map_err(IdpError::Invalid)?;
        let doc = Arc::new(doc);
        lock(&self.metadata).insert(key, (Instant::now(), doc.clone()));
        Ok(doc)
    }

    async fn jwks(
        &self,
        provider: &OidcProvider,
        jwks_uri: &str,
        refresh: bool,
    ) -> Result<Arc<JwkSet>, IdpError> {
        let key = (provider.id, jwks_uri.to_string());
        if !refresh && let Some(hit) = Self::fresh(&self.jwks, &key, self.jwks_ttl) {
            return Ok(hit);
        }
        let started = Instant::now();
        let _one_at_a_time = self.jwks_refresh.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some((at, set)) = lock(&self.jwks).get(&key)
            && *at >= started
        {
            return Ok(set.clone());
        }
        let set: JwkSet = self.get_json(provider, "jwks", jwks_uri).await?;
        let set = Arc::new(set);
        lock(&self.jwks).insert(key, (Instant::now(), set.clone()));
        Ok(set)
    }

    async fn exchange_code(
        &self,
        provider: &OidcProvider,
        request: TokenRequest,
    ) -> Result<TokenResponse, IdpError> {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", request.code),
            ("redirect_uri", request.redirect_uri),
            ("code_verifier", request.code_verifier),
        ];
        let mut req = self
            .http
            .post(&request.token_endpoint)
            .header("accept", "application/json");
        match &request.credentials {
            ClientCredentials::Basic(secret) => {
                let pair = format!(
                    "{}:{}",
                    form_encode(&request.client_id),
                    form_encode(secret.expose_secret())
                );
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                req = req.header("authorization", format!("Basic {encoded}"));
            }
            ClientCredentials::Post(secret) => {
                form.push(("client_id", request.client_id.clone()));
                form.push(("client_secret", secret.expose_secret().to_string()));
            }
            ClientCredentials::Assertion(jwt) => {
                form.push(("client_id", request.client_id.clone()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", jwt.clone()));
            }
        }
        let (status, body) = self.send(provider, "token", req.form(&form)).await?;
        match status {
            s if s.is_success() => serde_json::from_slice(&body)
                .map_err(|e| IdpError::Invalid(format!("token response: {e}"))),
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(IdpError::Rejected(oauth_error(&body)))
            }
            other => Err(IdpError::Invalid(format!("token endpoint: HTTP {other}"))),
        }
    }

    async fn userinfo(
        &self,
        provider: &OidcProvider,
        endpoint: &str,
        access_token: &SecretString,
    ) -> Result<serde_json::Value, IdpError> {
        let req = self
            .http
            .get(endpoint)
            .header("accept", "application/json")
            .bearer_auth(access_token.expose_secret());
        let (status, body) = self.send(provider, "userinfo", req).await?;
        if !status.is_success() {
            return Err(IdpError::Rejected(format!("userinfo: HTTP {status}")));
        }
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(v),
            _ => Err(IdpError::Invalid(
                "userinfo: not a JSON object (signed userinfo is not supported)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_codes_are_bounded_and_plain() {
        assert_eq!(
            oauth_error(br#"{"error":"invalid_grant"}"#),
            "invalid_grant"
        );
        assert_eq!(oauth_error(b"<html>"), "unknown");
        assert_eq!(oauth_error(br#"{"error":"a<script>b"}"#), "ascriptb");
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }
}

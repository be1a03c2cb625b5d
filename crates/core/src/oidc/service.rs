//! The sign-in flow: `start` sends the browser to the provider, `callback` checks what
//! comes back and creates the session exactly as a password login does.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::accounts::AccountService;
use crate::audit::{self, Action};
use crate::clock::{Millis, now_millis};
use crate::crypto::{b64url, constant_time_eq, random_token, sha256};
use crate::fieldcrypt::{KeyRing, Place};
use crate::ids::TenantId;
use crate::model::RequestMeta;
use crate::sessions::NewSession;
use crate::store::Store;
use crate::{CoreError, Result};

use super::client::{ClientCredentials, client_assertion};
use super::idtoken::{self, Expectations, KeyLookup};
use super::{
    AssertionAudience, ClientAuth, IdpClient, IdpError, OidcFailure, OidcLoginState, OidcProvider,
    ProviderMetadata, TokenRequest, pkce,
};

/// Service-wide settings.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// Development mode: plain-http issuers and endpoints are accepted.
    pub allow_http: bool,
    /// How long a started sign-in may take.
    pub state_ttl_ms: Millis,
    /// Tolerated clock difference with providers.
    pub clock_skew_secs: u64,
    /// Origins `return_to` may point to besides this site.
    pub return_to_origins: Vec<String>,
}

/// OpenID Connect sign-in and provider administration.
#[derive(Clone)]
pub struct OidcService {
    pub(super) store: Arc<dyn Store>,
    pub(super) keys: Arc<KeyRing>,
    pub(super) client: Arc<dyn IdpClient>,
    pub(super) accounts: AccountService,
    pub(super) config: Arc<OidcConfig>,
}

/// A sign-in to start.
pub struct StartInput<'a> {
    pub provider: &'a str,
    pub return_to: Option<&'a str>,
    /// Passed on to the provider (pre-fills its login form).
    pub login_hint: Option<&'a str>,
    /// This server's callback URL for the provider (the caller knows its public URL).
    pub redirect_uri: String,
}

/// Where to send the browser, and the cookie that binds the flow to it.
pub struct Started {
    pub authorization_url: String,
    /// Name suffix of the flow cookie (see [`flow_cookie_suffix`]).
    pub cookie_suffix: String,
    /// The flow cookie's value: only its hash is stored.
    pub binding: SecretString,
    pub max_age_secs: u64,
}

/// What the provider sent back, and the flow cookie.
pub struct CallbackInput<'a> {
    pub provider: &'a str,
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    pub iss: Option<&'a str>,
    /// The flow cookie's value, read with the name [`flow_cookie_suffix`] gives.
    pub binding: Option<&'a str>,
}

/// A completed sign-in.
pub struct SignedIn {
    pub session: NewSession,
    pub return_to: String,
}

/// The flow cookie's name suffix for a `state`: each concurrent sign-in of a browser
/// has its own cookie, and the callback finds it from the `state` it receives.
pub fn flow_cookie_suffix(state: &str) -> String {
    b64url(&sha256(
        format!("aegis oidc flow cookie:{state}").as_bytes(),
    ))[..16]
        .to_string()
}

/// Percent-encodes a query component (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn login_hint_ok(hint: &str) -> bool {
    !hint.is_empty() && hint.len() <= 256 && !hint.chars().any(char::is_control)
}

/// Where a PKCE verifier of a pending sign-in lives (bound into its ciphertext).
fn verifier_place<'a>(tenant: &'a str, row: &'a str) -> Place<'a> {
    Place {
        tenant,
        table: "oidc_login_states",
        column: "verifier_enc",
        row,
    }
}

/// Where a provider refresh token lives.
pub(super) fn refresh_place<'a>(tenant: &'a str, row: &'a str) -> Place<'a> {
    Place {
        tenant,
        table: "oidc_identities",
        column: "refresh_token_enc",
        row,
    }
}

fn secs(ms: Millis) -> i64 {
    ms / 1000
}

impl OidcService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        client: Arc<dyn IdpClient>,
        accounts: AccountService,
        config: OidcConfig,
    ) -> Self {
        OidcService {
            store,
            keys,
            client,
            accounts,
            config: Arc::new(config),
        }
    }

    /// Records a failed step (its own transaction), counts it, and returns the error.
    async fn fail(
        &self,
        tenant: TenantId,
        provider: &str,
        failure: OidcFailure,
        extra: Value,
        meta: &RequestMeta,
    ) -> CoreError {
        let mut details = json!({"provider": provider, "reason": failure.reason()});
        if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
            d.extend(e);
        }
        let ev = audit::event(
            tenant,
            meta,
            None,
            Action::OidcFailure,
            format!("oidc_provider:{provider}"),
            false,
            details,
        );
        if let Err(e) = audit::record(self.store.as_ref(), &ev).await {
            return e;
        }
        metrics::counter!("aegis_oidc_failures_total", "reason" => failure.reason()).increment(1);
        tracing::info!(target: "aegis::security", reason = failure.reason(), "OIDC sign-in failed");
        CoreError::Oidc(failure)
    }

    /// The enabled provider of this name.
    async fn provider(&self, tenant: TenantId, name: &str) -> Result<Option<OidcProvider>> {
        let mut tx = self.store.read(tenant).await?;
        Ok(tx
            .oidc_provider_by_name(name)
            .await?
            .filter(|p| p.settings.enabled))
    }

    async fn metadata(
        &self,
        tenant: TenantId,
        provider: &OidcProvider,
        meta: &RequestMeta,
    ) -> Result<Arc<ProviderMetadata>> {
        match self.client.metadata(provider).await {
            Ok(m) => Ok(m),
            Err(e) => Err(self.idp_failure(tenant, &provider.name, e, meta).await),
        }
    }

    async fn idp_failure(
        &self,
        tenant: TenantId,
        provider: &str,
        e: IdpError,
        meta: &RequestMeta,
    ) -> CoreError {
        tracing::warn!(provider, error = %e, "identity provider call failed");
        let failure = match e {
            IdpError::Unavailable(_) => OidcFailure::ProviderUnavailable,
            IdpError::Rejected(_) => OidcFailure::CodeRejected,
            IdpError::Invalid(_) => OidcFailure::TokenResponseInvalid,
        };
        self.fail(tenant, provider, failure, json!({}), meta).await
    }

    /// Starts a sign-in: stores the flow (state hash, browser binding hash, nonce hash,
    /// encrypted PKCE verifier) and returns the provider's authorization URL.
    pub async fn start(
        &self,
        tenant: TenantId,
        input: StartInput<'_>,
        meta: &RequestMeta,
    ) -> Result<Started> {
        let Some(provider) = self.provider(tenant, input.provider).await? else {
            return Err(CoreError::Oidc(OidcFailure::UnknownProvider));
        };
        let return_to = match super::return_to::check_return_to(
            input.return_to,
            &self.config.return_to_origins,
        ) {
            Ok(r) => r,
            Err(_) => {
                return Err(self
                    .fail(
                        tenant,
                        &provider.name,
                        OidcFailure::ReturnToRefused,
                        json!({}),
                        meta,
                    )
                    .await);
            }
        };
        if input.login_hint.is_some_and(|h| !login_hint_ok(h)) {
            return Err(CoreError::Invalid(
                "login_hint: at most 256 printable characters".into(),
            ));
        }
        let metadata = self.metadata(tenant, &provider, meta).await?;
        let state = random_token()?;
        let nonce = random_token()?;
        let binding = random_token()?;
        let verifier = pkce::new_verifier()?;
        let now = now_millis();
        let id = uuid::Uuid::now_v7();
        let (tenant_s, id_s) = (tenant.to_string(), id.to_string());
        let record = OidcLoginState {
            id,
            provider_id: provider.id,
            state_hash: sha256(state.as_bytes()).to_vec(),
            binding_hash: sha256(binding.as_bytes()).to_vec(),
            nonce_hash: sha256(nonce.as_bytes()).to_vec(),
            verifier_enc: self
                .keys
                .encrypt(verifier.as_bytes(), &verifier_place(&tenant_s, &id_s))?,
            redirect_uri: input.redirect_uri.clone(),
            return_to,
            created_at: now,
            expires_at: now + self.config.state_ttl_ms,
        };
        let s = &provider.settings;
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &s.client_id),
            ("redirect_uri", &input.redirect_uri),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge_method", "S256"),
        ];
        let scope = s.scopes.join(" ");
        let challenge = pkce::challenge(&verifier);
        params.push(("scope", &scope));
        params.push(("code_challenge", &challenge));
        if let Some(hint) = input.login_hint {
            params.push(("login_hint", hint));
        }
        for (k, v) in &s.auth_params {
            params.push((k, v));
        }
        let query = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let sep = if metadata.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let authorization_url = format!("{}{sep}{query}", metadata.authorization_endpoint);
        let mut tx = self.store.write(tenant).await?;
        tx.oidc_state_insert(&record).await?;
        let ev = audit::event(
            tenant,
            meta,
            None,
            Action::OidcStart,
            format!("oidc_provider:{}", provider.name),
            true,
            json!({"provider": provider.name, "flow_id": id}),
        );
        tx.append_audit(&ev).await?;
        tx.commit().await?;
        Ok(Started {
            authorization_url,
            cookie_suffix: flow_cookie_suffix(&state),
            binding: SecretString::from(binding),
            max_age_secs: u64::try_from(self.config.state_ttl_ms / 1000).unwrap_or(600),
        })
    }

    /// Completes a sign-in from the provider's redirect. The flow is consumed first, so
    /// every callback URL works at most once.
    pub async fn callback(
        &self,
        tenant: TenantId,
        input: CallbackInput<'_>,
        meta: &RequestMeta,
    ) -> Result<SignedIn> {
        let name = input.provider;
        let fail = |f: OidcFailure| self.fail(tenant, name, f, json!({}), meta);
        let Some(state) = input.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
            return Err(fail(OidcFailure::StateMissing).await);
        };
        let Some(provider) = self.provider(tenant, name).await? else {
            return Err(CoreError::Oidc(OidcFailure::UnknownProvider));
        };
        let flow = {
            let mut tx = self.store.write(tenant).await?;
            let flow = tx.oidc_state_take(&sha256(state.as_bytes())).await?;
            tx.commit().await?;
            flow
        };
        let Some(flow) = flow.filter(|f| f.provider_id == provider.id) else {
            return Err(fail(OidcFailure::StateInvalid).await);
        };
        let now = now_millis();
        if flow.expires_at <= now {
            return Err(fail(OidcFailure::StateExpired).await);
        }
        let bound = input
            .binding
            .is_some_and(|b| constant_time_eq(&sha256(b.as_bytes()), &flow.binding_hash));
        if !bound {
            return Err(fail(OidcFailure::BrowserMismatch).await);
        }
        if let Some(error) = input.error {
            // Only a bounded, plain code is recorded: the text comes from the network.
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(self
                .fail(
                    tenant,
                    name,
                    OidcFailure::ProviderError,
                    json!({"error": code}),
                    meta,
                )
                .await);
        }
        let Some(code) = input.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
            return Err(fail(OidcFailure::CodeMissing).await);
        };
        if let Some(iss) = input.iss
            && iss != provider.settings.issuer
        {
            return Err(fail(OidcFailure::IssuerMismatch).await);
        }
        let metadata = self.metadata(tenant, &provider, meta).await?;
        let tenant_s = tenant.to_string();
        let verifier = self.keys.decrypt(
            &flow.verifier_enc,
            &verifier_place(&tenant_s, &flow.id.to_string()),
        )?;
        let verifier = String::from_utf8(verifier.to_vec())
            .map_err(|_| CoreError::Internal("stored PKCE verifier is not text".into()))?;
        let request = TokenRequest {
            token_endpoint: metadata.token_endpoint.clone(),
            code: code.to_string(),
            code_verifier: verifier,
            redirect_uri: flow.redirect_uri.clone(),
            client_id: provider.settings.client_id.clone(),
            credentials: self.credentials(&provider, &metadata)?,
        };
        let tokens = match self.client.exchange_code(&provider, request).await {
            Ok(t) => t,
            Err(e) => return Err(self.idp_failure(tenant, name, e, meta).await),
        };
        let Some(id_token) = tokens.id_token.as_deref() else {
            return Err(fail(OidcFailure::TokenResponseInvalid).await);
        };
        let claims = match self
            .verify_id_token(&provider, &metadata, id_token, &flow, now)
            .await
        {
            Ok(c) => c,
            Err(f) => return Err(fail(f).await),
        };
        let claims = match self
            .with_userinfo(&provider, &metadata, tokens.access_token.as_ref(), claims)
            .await
        {
            Ok(c) => c,
            Err(f) => return Err(fail(f).await),
        };
        let refresh = tokens
            .refresh_token
            .filter(|_| provider.settings.store_refresh_token);
        match self
            .sign_in(tenant, &provider, &claims, refresh.as_ref(), meta)
            .await
        {
            Ok(session) => Ok(SignedIn {
                session,
                return_to: flow.return_to,
            }),
            Err(CoreError::Oidc(f)) => Err(fail(f).await),
            Err(e) => Err(e),
        }
    }

    fn credentials(
        &self,
        provider: &OidcProvider,
        metadata: &ProviderMetadata,
    ) -> Result<ClientCredentials> {
        let tenant = provider.tenant_id.to_string();
        let row = provider.id.to_string();
        let decrypt = |stored: &Option<String>, column: &str| -> Result<String> {
            let stored = stored.as_deref().ok_or_else(|| {
                CoreError::Internal(format!("provider {} has no {column}", provider.name))
            })?;
            let place = Place {
                tenant: &tenant,
                table: "oidc_providers",
                column,
                row: &row,
            };
            String::from_utf8(self.keys.decrypt(stored, &place)?.to_vec())
                .map_err(|_| CoreError::Internal(format!("{column} is not text")))
        };
        Ok(match provider.settings.client_auth {
            ClientAuth::ClientSecretBasic => ClientCredentials::Basic(SecretString::from(decrypt(
                &provider.client_secret_enc,
                "client_secret_enc",
            )?)),
            ClientAuth::ClientSecretPost => ClientCredentials::Post(SecretString::from(decrypt(
                &provider.client_secret_enc,
                "client_secret_enc",
            )?)),
            ClientAuth::PrivateKeyJwt => {
                let pem =
                    SecretString::from(decrypt(&provider.private_key_enc, "private_key_enc")?);
                let audience = match provider.settings.assertion_audience {
                    AssertionAudience::TokenEndpoint => &metadata.token_endpoint,
                    AssertionAudience::Issuer => &metadata.issuer,
                };
                let assertion = client_assertion(
                    &provider.settings.client_id,
                    audience,
                    pem.expose_secret(),
                    provider.settings.private_key_id.as_deref(),
                    secs(now_millis()),
                )
                .map_err(CoreError::Internal)?;
                ClientCredentials::Assertion(assertion)
            }
        })
    }

    /// Verifies the ID token against the provider's JWKS, fetching a fresh JWKS once
    /// when the token names a key the cached set lacks.
    async fn verify_id_token(
        &self,
        provider: &OidcProvider,
        metadata: &ProviderMetadata,
        token: &str,
        flow: &OidcLoginState,
        now: Millis,
    ) -> Result<Value, OidcFailure> {
        let header = idtoken::peek_header(token)?;
        let alg = idtoken::allowed_algorithm(&header.alg, &provider.settings.algorithms)?;
        let unavailable = |e: IdpError| {
            tracing::warn!(provider = %provider.name, error = %e, "JWKS fetch failed");
            OidcFailure::ProviderUnavailable
        };
        let mut jwks = self
            .client
            .jwks(provider, &metadata.jwks_uri, false)
            .await
            .map_err(unavailable)?;
        let mut refreshed = false;
        loop {
            match idtoken::select_key(&jwks, &header, alg)? {
                KeyLookup::Found(key) => {
                    let expect = Expectations {
                        issuer: &provider.settings.issuer,
                        client_id: &provider.settings.client_id,
                        nonce_hash: &flow.nonce_hash,
                        now_secs: secs(now),
                        skew_secs: self.config.clock_skew_secs,
                        started_secs: secs(flow.created_at),
                    };
                    return idtoken::verify(token, key, alg, &expect);
                }
                KeyLookup::Unknown if !refreshed => {
                    refreshed = true;
                    jwks = self
                        .client
                        .jwks(provider, &metadata.jwks_uri, true)
                        .await
                        .map_err(unavailable)?;
                }
                KeyLookup::Unknown => return Err(OidcFailure::IdTokenUnknownKey),
            }
        }
    }

    /// Merges userinfo claims when the provider is configured to fetch them; the
    /// userinfo `sub` must be the ID token's (OpenID Connect Core 5.3.2).
    async fn with_userinfo(
        &self,
        provider: &OidcProvider,
        metadata: &ProviderMetadata,
        access_token: Option<&SecretString>,
        mut claims: Value,
    ) -> Result<Value, OidcFailure> {
        if !provider.settings.fetch_userinfo {
            return Ok(claims);
        }
        let (Some(endpoint), Some(access)) = (&metadata.userinfo_endpoint, access_token) else {
            return Err(OidcFailure::Userinfo);
        };
        let info = match self.client.userinfo(provider, endpoint, access).await {
            Ok(v) => v,
            Err(IdpError::Unavailable(_)) => return Err(OidcFailure::ProviderUnavailable),
            Err(_) => return Err(OidcFailure::Userinfo),
        };
        if info.get("sub") != claims.get("sub") {
            return Err(OidcFailure::Userinfo);
        }
        const PROTOCOL: &[&str] = &["iss", "aud", "exp", "iat", "nbf", "nonce", "azp", "sub"];
        if let (Value::Object(c), Value::Object(i)) = (&mut claims, info) {
            for (k, v) in i {
                if !PROTOCOL.contains(&k.as_str()) {
                    c.insert(k, v);
                }
            }
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(encode("openid email"), "openid%20email");
        assert_eq!(
            encode("https://a.example/cb?x=1&y"),
            "https%3A%2F%2Fa.example%2Fcb%3Fx%3D1%26y"
        );
        assert_eq!(encode("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn flow_cookie_names_differ_per_state() {
        let a = flow_cookie_suffix("state-a");
        assert_eq!(a.len(), 16);
        assert_ne!(a, flow_cookie_suffix("state-b"));
        assert_eq!(a, flow_cookie_suffix("state-a"));
    }
}

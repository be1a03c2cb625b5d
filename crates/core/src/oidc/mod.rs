//! Sign-in with upstream OpenID Connect providers: authorization code flow with PKCE
//! S256, `state` bound to the browser, `nonce`, ID tokens verified against the
//! provider's JWKS, account linking by `(provider, sub)`, and claims mapped to roles.
//!
//! This module knows no HTTP client: the outbound calls (discovery, JWKS, token
//! exchange, userinfo) go through the [`IdpClient`] trait, which the server implements
//! with timeouts and a circuit breaker.

mod account;
mod client;
mod failure;
pub mod idtoken;
pub mod pkce;
mod provider;
mod providers;
pub mod return_to;
pub mod roles;
mod service;

pub use client::{
    ClientCredentials, IdpClient, IdpError, ProviderMetadata, TokenRequest, TokenResponse,
    client_assertion,
};
pub use failure::{FailureClass, OidcFailure};
/// The JWKS type the [`IdpClient`] returns.
pub use jsonwebtoken::jwk::JwkSet;
pub use provider::{
    AssertionAudience, ClaimMapping, ClientAuth, OidcProvider, ProviderInput, ProviderSettings,
    ProviderView, RoleRule, SUPPORTED_ALGORITHMS, validate_issuer, validate_provider_name,
};
pub use providers::{PublicProvider, rotate_keys};
pub use service::{
    CallbackInput, OidcConfig, OidcService, SignedIn, StartInput, Started, flow_cookie_suffix,
};

use crate::clock::Millis;
use crate::ids::UserId;

/// A sign-in in progress, kept server-side between the redirect to the provider and the
/// callback. Only hashes of `state`, of the browser binding and of `nonce` are stored;
/// the PKCE verifier is stored encrypted.
#[derive(Clone, Debug)]
pub struct OidcLoginState {
    pub id: uuid::Uuid,
    pub provider_id: uuid::Uuid,
    pub state_hash: Vec<u8>,
    /// SHA-256 of the random value in the browser's flow cookie: the callback must come
    /// from the browser that started the flow (no login CSRF).
    pub binding_hash: Vec<u8>,
    pub nonce_hash: Vec<u8>,
    /// The PKCE code verifier, field-encrypted.
    pub verifier_enc: String,
    /// The exact `redirect_uri` sent to the provider, repeated at the code exchange.
    pub redirect_uri: String,
    /// Where the browser goes after signing in (already checked against the allowed
    /// origins).
    pub return_to: String,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// The link between a local user and an account at a provider. The key is
/// `(provider, subject)`, never the e-mail address, which providers let users change.
#[derive(Clone, Debug)]
pub struct OidcLink {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub provider_id: uuid::Uuid,
    pub subject: String,
    /// The provider's refresh token, field-encrypted, when the provider is configured to
    /// keep it.
    pub refresh_token_enc: Option<String>,
    pub created_at: Millis,
    pub last_login_at: Option<Millis>,
}

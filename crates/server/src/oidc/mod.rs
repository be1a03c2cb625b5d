//! Sign-in with upstream OpenID Connect providers, server side: the `[oidc]`
//! configuration and the HTTP client that talks to providers.

pub mod cli;
pub mod client;
pub mod config;

pub use client::HttpIdpClient;
pub use config::OidcSection;

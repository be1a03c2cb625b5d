//! The one error type of the domain layer. The HTTP layer maps each variant to a fixed status.

use thiserror::Error;

/// Errors produced by domain services and storage.
#[derive(Debug, Error)]
pub enum CoreError {
    /// Input failed validation; the message is safe to show to the client.
    #[error("{0}")]
    Invalid(String),
    /// Credentials were wrong, unknown, or the account is temporarily locked.
    /// Deliberately carries no detail so that all three cases look the same.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The second factor (TOTP or backup code) was wrong, already used, or its login
    /// challenge expired.
    #[error("invalid or already used code, or the login step expired")]
    InvalidSecondFactor,
    /// No (valid) session.
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist (in this tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Uniqueness conflict, e.g. an e-mail address already registered.
    #[error("{0}")]
    Conflict(String),
    /// The server is saturated (e.g. password hashing queue full).
    #[error("server busy, retry later")]
    Busy { retry_after_secs: u64 },
    /// A sign-in with an upstream OpenID Connect provider failed.
    #[error("{0}")]
    Oidc(crate::oidc::OidcFailure),
    /// Storage failure. The text is for logs only, never for clients.
    #[error("storage error: {0}")]
    Storage(String),
    /// Any other internal failure. The text is for logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias for the domain layer.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

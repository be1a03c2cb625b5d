//! Why a sign-in with a provider failed: one stable reason code per cause (recorded in
//! the audit log and metrics) and a message that tells the user what happened without
//! revealing tokens or secrets.

/// How a failure answers over HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// The request itself is wrong or stale (400).
    BadRequest,
    /// The provider's answer did not prove who the user is (401).
    Unauthenticated,
    /// Authenticated at the provider, but this tenant does not let them in (403).
    Forbidden,
    /// No such provider here (404).
    NotFound,
    /// The address belongs to another account (409).
    Conflict,
    /// The provider did not answer in time or its circuit is open (503).
    Unavailable,
    /// The provider answered with something unusable (502).
    BadGateway,
}

/// The cause of a failed sign-in with a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OidcFailure {
    UnknownProvider,
    ReturnToRefused,
    StateMissing,
    /// Unknown, tampered with, or already used.
    StateInvalid,
    StateExpired,
    /// The callback did not come from the browser that started the sign-in.
    BrowserMismatch,
    /// The provider redirected back with an `error` (for example `access_denied`).
    ProviderError,
    CodeMissing,
    /// The `iss` parameter of the authorization response names another issuer (RFC 9207).
    IssuerMismatch,
    ProviderUnavailable,
    /// The token endpoint refused the code (expired, replayed, or the PKCE verifier
    /// does not match).
    CodeRejected,
    /// The token endpoint's answer carried no usable ID token.
    TokenResponseInvalid,
    IdTokenMalformed,
    /// `none`, a symmetric algorithm, or one the provider's settings do not allow.
    IdTokenAlgorithm,
    /// Signed by a key that is not in the provider's JWKS, even after a refresh.
    IdTokenUnknownKey,
    IdTokenSignature,
    IdTokenIssuer,
    IdTokenAudience,
    IdTokenAuthorizedParty,
    IdTokenExpired,
    /// `iat` in the future, or `nbf` not yet reached, beyond the allowed clock skew.
    IdTokenNotYetValid,
    /// `iat` older than the sign-in itself.
    IdTokenTooOld,
    IdTokenNonce,
    IdTokenSubject,
    /// The userinfo answer was unusable or named another subject.
    Userinfo,
    EmailMissing,
    /// A local account already has this address and linking is not allowed for it.
    EmailConflict,
    /// No linked account and just-in-time provisioning is off.
    NoAccount,
}

impl OidcFailure {
    /// The stable reason code (audit `details.reason`, metric label).
    pub fn reason(self) -> &'static str {
        use OidcFailure::*;
        match self {
            UnknownProvider => "unknown_provider",
            ReturnToRefused => "return_to_refused",
            StateMissing => "state_missing",
            StateInvalid => "state_invalid",
            StateExpired => "state_expired",
            BrowserMismatch => "browser_mismatch",
            ProviderError => "provider_error",
            CodeMissing => "code_missing",
            IssuerMismatch => "issuer_mismatch",
            ProviderUnavailable => "provider_unavailable",
            CodeRejected => "code_rejected",
            TokenResponseInvalid => "token_response_invalid",
            IdTokenMalformed => "id_token_malformed",
            IdTokenAlgorithm => "id_token_algorithm",
            IdTokenUnknownKey => "id_token_unknown_key",
            IdTokenSignature => "id_token_signature",
            IdTokenIssuer => "id_token_issuer",
            IdTokenAudience => "id_token_audience",
            IdTokenAuthorizedParty => "id_token_azp",
            IdTokenExpired => "id_token_expired",
            IdTokenNotYetValid => "id_token_not_yet_valid",
            IdTokenTooOld => "id_token_too_old",
            IdTokenNonce => "id_token_nonce",
            IdTokenSubject => "id_token_subject",
            Userinfo => "userinfo_invalid",
            EmailMissing => "email_missing",
            EmailConflict => "email_conflict",
            NoAccount => "no_account",
        }
    }

    /// How the failure answers over HTTP.
    pub fn class(self) -> FailureClass {
        use OidcFailure::*;
        match self {
            UnknownProvider => FailureClass::NotFound,
            ReturnToRefused | StateMissing | StateInvalid | StateExpired | BrowserMismatch
            | CodeMissing | IssuerMismatch | CodeRejected => FailureClass::BadRequest,
            ProviderError
            | IdTokenMalformed
            | IdTokenAlgorithm
            | IdTokenUnknownKey
            | IdTokenSignature
            | IdTokenIssuer
            | IdTokenAudience
            | IdTokenAuthorizedParty
            | IdTokenExpired
            | IdTokenNotYetValid
            | IdTokenTooOld
            | IdTokenNonce
            | IdTokenSubject
            | Userinfo => FailureClass::Unauthenticated,
            ProviderUnavailable => FailureClass::Unavailable,
            TokenResponseInvalid => FailureClass::BadGateway,
            EmailMissing | NoAccount => FailureClass::Forbidden,
            EmailConflict => FailureClass::Conflict,
        }
    }

    /// What the user is told.
    pub fn message(self) -> &'static str {
        use OidcFailure::*;
        match self {
            UnknownProvider => "no such identity provider in this tenant",
            ReturnToRefused => {
                "return_to: must be a path on this site or a URL on a configured origin (oidc.return_to_origins)"
            }
            StateMissing => "sign-in response without state: start the sign-in again",
            StateInvalid => "unknown or already used sign-in state: start the sign-in again",
            StateExpired => "the sign-in took too long: start it again",
            BrowserMismatch => {
                "this sign-in was started in another browser (or its cookie is gone): start it again"
            }
            ProviderError => "the identity provider did not sign you in",
            CodeMissing => "sign-in response without an authorization code",
            IssuerMismatch => "the sign-in response names another issuer",
            ProviderUnavailable => {
                "the identity provider is unreachable or too slow: try again in a moment"
            }
            CodeRejected => {
                "the identity provider refused the authorization code (expired or already used): start the sign-in again"
            }
            TokenResponseInvalid => "the identity provider's token response is unusable",
            IdTokenMalformed
            | IdTokenAlgorithm
            | IdTokenUnknownKey
            | IdTokenSignature
            | IdTokenIssuer
            | IdTokenAudience
            | IdTokenAuthorizedParty
            | IdTokenExpired
            | IdTokenNotYetValid
            | IdTokenTooOld
            | IdTokenNonce
            | IdTokenSubject => "the identity provider's ID token failed verification",
            Userinfo => "the identity provider's userinfo response failed verification",
            EmailMissing => "the identity provider did not share an e-mail address",
            EmailConflict => {
                "an account with this e-mail address already exists: sign in with it, or ask an administrator to allow linking"
            }
            NoAccount => "no account is linked to this identity and sign-up through it is off",
        }
    }
}

impl std::fmt::Display for OidcFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

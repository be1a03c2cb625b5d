//! An upstream provider's configuration: what an administrator sends, what is stored,
//! and what is shown back (never a secret).

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::TenantId;
use crate::{CoreError, Result};

use super::roles::{valid_claim_path, valid_role_name};

/// How Aegis authenticates itself at the provider's token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (the OAuth 2.0 default).
    #[default]
    ClientSecretBasic,
    /// Client id and secret in the form body.
    ClientSecretPost,
    /// A short-lived JWT signed with the client's private key (RFC 7523); no shared
    /// secret at all.
    PrivateKeyJwt,
}

/// The `aud` of a `private_key_jwt` assertion: most providers (Entra ID, Okta,
/// Keycloak) take the token endpoint URL, some (Auth0) the issuer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertionAudience {
    #[default]
    TokenEndpoint,
    Issuer,
}

/// Which claims carry the user's address and whether the provider verified it. Paths
/// may be dotted (`realm_access.roles`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub email: String,
    pub email_verified: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            email: "email".into(),
            email_verified: "email_verified".into(),
        }
    }
}

/// Grants `role` when the claim at `claim` equals `value` or, for a list, contains it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    pub claim: String,
    pub value: String,
    pub role: String,
}

/// ID token signature algorithms accepted unless a provider narrows the list.
/// Symmetric (HS*) algorithms and `none` are never accepted.
pub const SUPPORTED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Authorization parameters Aegis sets itself; `auth_params` may not override them.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
    "login_hint",
];

fn yes() -> bool {
    true
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

fn default_algorithms() -> Vec<String> {
    SUPPORTED_ALGORITHMS.iter().map(|s| s.to_string()).collect()
}

/// A provider's settings, as the admin API and CLI take them. The two secrets are only
/// ever read from input: they are stored encrypted in their own columns and never
/// serialised.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The issuer identifier; discovery reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    #[serde(default, skip_serializing)]
    pub client_secret: Option<SecretString>,
    /// PEM (PKCS#8 EC P-256 or RSA) for `private_key_jwt`.
    #[serde(default, skip_serializing)]
    pub private_key_pem: Option<SecretString>,
    /// The `kid` header of client assertions, when the provider wants one.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// The `aud` of `private_key_jwt` assertions.
    #[serde(default)]
    pub assertion_audience: AssertionAudience,
    /// Shown on sign-in pages (default: the provider's name).
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    #[serde(default)]
    pub claims: ClaimMapping,
    #[serde(default)]
    pub role_rules: Vec<RoleRule>,
    /// Create a local user at the first sign-in of an unknown provider account.
    #[serde(default = "yes")]
    pub jit_provisioning: bool,
    /// Link a first sign-in to an existing local user with the same address, when the
    /// provider says the address is verified.
    #[serde(default)]
    pub link_verified_email: bool,
    /// Treat this provider's addresses as verified even without an `email_verified`
    /// claim (for providers such as Entra ID that do not send one).
    #[serde(default)]
    pub trust_email: bool,
    /// Also read claims from the userinfo endpoint.
    #[serde(default)]
    pub fetch_userinfo: bool,
    /// Keep the provider's refresh token (encrypted); add `offline_access` to `scopes`
    /// where the provider needs it.
    #[serde(default)]
    pub store_refresh_token: bool,
    /// Accepted ID token signature algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Extra authorization request parameters (`prompt`, Google's `hd`, ...).
    #[serde(default)]
    pub auth_params: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A stored provider. `settings` carries no secrets; they live encrypted beside it.
#[derive(Clone, Debug)]
pub struct OidcProvider {
    pub id: uuid::Uuid,
    pub tenant_id: TenantId,
    pub name: String,
    pub settings: ProviderSettings,
    pub client_secret_enc: Option<String>,
    pub private_key_enc: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Input for creating or replacing a provider.
pub struct ProviderInput {
    pub name: String,
    pub settings: ProviderSettings,
}

/// What an administrator sees of a provider.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderView {
    pub name: String,
    #[serde(flatten)]
    pub settings: ProviderSettings,
    pub client_secret_set: bool,
    pub private_key_set: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl From<&OidcProvider> for ProviderView {
    fn from(p: &OidcProvider) -> Self {
        ProviderView {
            name: p.name.clone(),
            settings: p.settings.clone(),
            client_secret_set: p.client_secret_enc.is_some(),
            private_key_set: p.private_key_enc.is_some(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A provider name: the path segment in `/auth/oidc/{name}/...`.
pub fn validate_provider_name(name: &str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(
            "name: 1-32 characters of a-z, 0-9 and '-', not starting with '-'".into(),
        ))
    }
}

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::Invalid(msg.into())
}

fn printable(s: &str) -> bool {
    s.chars().all(|c| !c.is_control())
}

/// Checks an issuer URL: https (plain http only when `allow_http`, for development and
/// tests on loopback), a host, no query or fragment.
pub fn validate_issuer(issuer: &str, allow_http: bool) -> Result<()> {
    let url = url_parts(issuer).ok_or_else(|| invalid("issuer: not a URL"))?;
    let (scheme, rest) = url;
    match scheme {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(invalid(
                "issuer: must use https (plain http is accepted only in development mode)",
            ));
        }
        _ => return Err(invalid("issuer: must be an https:// URL")),
    }
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', '@', ' ']) {
        return Err(invalid(
            "issuer: needs a host, and no query, fragment or user info",
        ));
    }
    if issuer.len() > 512 {
        return Err(invalid("issuer: at most 512 characters"));
    }
    Ok(())
}

/// `(scheme, rest)` of `scheme://rest`.
fn url_parts(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    Some((scheme, rest))
}

impl ProviderSettings {
    /// Validates and normalises the settings (adds the `openid` scope). The issuer is
    /// kept exactly as given: ID tokens and discovery must name it byte for byte, and
    /// some providers (Auth0) end theirs with a slash. `has_stored_secret` / `has_stored_key` say whether a
    /// replaced provider already holds a secret or key that the input may leave out.
    pub fn validate(
        &mut self,
        allow_http: bool,
        has_stored_secret: bool,
        has_stored_key: bool,
    ) -> Result<()> {
        validate_issuer(&self.issuer, allow_http)?;
        if self.client_id.is_empty() || self.client_id.len() > 255 || !printable(&self.client_id) {
            return Err(invalid("client_id: 1-255 printable characters"));
        }
        if let Some(s) = &self.client_secret {
            let s = s.expose_secret();
            if s.is_empty() || s.len() > 1024 || !printable(s) {
                return Err(invalid("client_secret: 1-1024 printable characters"));
            }
        }
        match self.client_auth {
            ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost => {
                if self.client_secret.is_none() && !has_stored_secret {
                    return Err(invalid(
                        "client_secret: required for client_auth client_secret_basic / client_secret_post",
                    ));
                }
            }
            ClientAuth::PrivateKeyJwt => match &self.private_key_pem {
                Some(pem) => {
                    super::client::signing_key(pem.expose_secret()).map_err(|_| {
                        invalid(
                            "private_key_pem: expected a PEM private key (PKCS#8 EC P-256, or RSA)",
                        )
                    })?;
                }
                None if has_stored_key => {}
                None => {
                    return Err(invalid(
                        "private_key_pem: required for client_auth private_key_jwt",
                    ));
                }
            },
        }
        if let Some(kid) = &self.private_key_id
            && (kid.is_empty() || kid.len() > 128 || !printable(kid))
        {
            return Err(invalid("private_key_id: 1-128 printable characters"));
        }
        if let Some(d) = &self.display_name
            && (d.is_empty() || d.chars().count() > 100 || !printable(d))
        {
            return Err(invalid("display_name: 1-100 printable characters"));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            self.scopes.insert(0, "openid".into());
        }
        if self.scopes.len() > 20
            || self.scopes.iter().any(|s| {
                s.is_empty()
                    || s.len() > 64
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            })
        {
            return Err(invalid(
                "scopes: at most 20 scope tokens of 1-64 visible ASCII characters",
            ));
        }
        for (field, path) in [
            ("claims.email", &self.claims.email),
            ("claims.email_verified", &self.claims.email_verified),
        ] {
            if !valid_claim_path(path) {
                return Err(invalid(format!(
                    "{field}: a claim name or dotted path (letters, digits, _ - : . /)"
                )));
            }
        }
        if self.role_rules.len() > 100 {
            return Err(invalid("role_rules: at most 100 rules"));
        }
        for (i, rule) in self.role_rules.iter().enumerate() {
            if !valid_claim_path(&rule.claim) {
                return Err(invalid(format!(
                    "role_rules[{i}].claim: a claim name or dotted path (letters, digits, _ - : . /)"
                )));
            }
            if rule.value.is_empty() || rule.value.len() > 256 || !printable(&rule.value) {
                return Err(invalid(format!(
                    "role_rules[{i}].value: 1-256 printable characters"
                )));
            }
            if !valid_role_name(&rule.role) {
                return Err(invalid(format!(
                    "role_rules[{i}].role: 1-64 characters of a-z, 0-9, _ . : -, starting with a letter"
                )));
            }
        }
        if self.algorithms.is_empty() {
            return Err(invalid("algorithms: at least one"));
        }
        for alg in &self.algorithms {
            if !SUPPORTED_ALGORITHMS.contains(&alg.as_str()) {
                return Err(invalid(format!(
                    "algorithms: '{}' is not accepted; choose from {}",
                    alg.chars().take(16).collect::<String>(),
                    SUPPORTED_ALGORITHMS.join(", ")
                )));
            }
        }
        if self.auth_params.len() > 20 {
            return Err(invalid("auth_params: at most 20 parameters"));
        }
        for (k, v) in &self.auth_params {
            if RESERVED_PARAMS.contains(&k.as_str()) {
                return Err(invalid(format!(
                    "auth_params: '{k}' is set by Aegis and cannot be overridden"
                )));
            }
            if k.is_empty()
                || k.len() > 64
                || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || v.len() > 512
                || !printable(v)
            {
                return Err(invalid(
                    "auth_params: names of 1-64 letters, digits or '_', values of at most 512 printable characters",
                ));
            }
        }
        Ok(())
    }

    /// The name shown to users.
    pub fn display_name_or<'a>(&'a self, name: &'a str) -> &'a str {
        self.display_name.as_deref().unwrap_or(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> ProviderSettings {
        serde_json::from_value(json).expect("settings")
    }

    #[test]
    fn defaults_and_normalisation() {
        let mut s = settings(serde_json::json!({
            "issuer": "https://idp.example.com/tenant/",
            "client_id": "aegis",
            "client_secret": "s3cret",
            "scopes": ["email"],
        }));
        s.validate(false, false, false).unwrap();
        assert_eq!(
            s.issuer, "https://idp.example.com/tenant/",
            "kept byte for byte"
        );
        assert_eq!(s.scopes, ["openid", "email"]);
        assert!(s.jit_provisioning && s.enabled && !s.link_verified_email);
        assert_eq!(s.client_auth, ClientAuth::ClientSecretBasic);
        let shown = serde_json::to_string(&s).unwrap();
        assert!(!shown.contains("s3cret"), "secrets are never serialised");
    }

    #[test]
    fn refusals_name_the_field() {
        let base = serde_json::json!({"issuer": "https://idp.example.com", "client_id": "a", "client_secret": "x"});
        let mut dev = settings(
            serde_json::json!({"issuer": "http://127.0.0.1:9000", "client_id": "a", "client_secret": "x"}),
        );
        assert!(
            dev.validate(true, false, false).is_ok(),
            "development accepts http"
        );
        let check = |patch: serde_json::Value, allow_http: bool| {
            let mut v = base.clone();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            settings(v)
                .validate(allow_http, false, false)
                .unwrap_err()
                .to_string()
        };
        assert!(
            check(
                serde_json::json!({"issuer": "http://idp.example.com"}),
                false
            )
            .contains("https")
        );
        assert!(
            check(
                serde_json::json!({"issuer": "https://idp.example.com?x=1"}),
                false
            )
            .starts_with("issuer")
        );
        assert!(
            check(serde_json::json!({"algorithms": ["none"]}), false).starts_with("algorithms")
        );
        assert!(
            check(serde_json::json!({"algorithms": ["HS256"]}), false).starts_with("algorithms")
        );
        assert!(check(serde_json::json!({"role_rules": [{"claim": "groups", "value": "x", "role": "Admin!"}]}), false).starts_with("role_rules[0].role"));
        assert!(
            check(serde_json::json!({"auth_params": {"state": "x"}}), false)
                .contains("cannot be overridden")
        );
        assert!(
            check(serde_json::json!({"client_auth": "private_key_jwt"}), false)
                .starts_with("private_key_pem")
        );
        let mut no_secret =
            settings(serde_json::json!({"issuer": "https://idp.example.com", "client_id": "a"}));
        assert!(no_secret.validate(false, false, false).is_err());
        assert!(
            no_secret.validate(false, true, false).is_ok(),
            "a stored secret may be kept"
        );
        assert!(validate_provider_name("corp-sso").is_ok());
        assert!(validate_provider_name("Corp").is_err());
        assert!(validate_provider_name("../x").is_err());
    }
}

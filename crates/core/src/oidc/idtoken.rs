//! ID token verification (OpenID Connect Core 3.1.3.7). The algorithm comes from the
//! provider's key and settings, never from the token alone: `none` and symmetric
//! algorithms are refused before any key is looked at, and a key that declares its
//! algorithm verifies only that one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::crypto::{constant_time_eq, sha256};

use super::OidcFailure;

/// The unverified header fields that select the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHeader {
    pub alg: String,
    pub kid: Option<String>,
}

/// Reads the header of a compact JWS without trusting it.
pub fn peek_header(token: &str) -> Result<TokenHeader, OidcFailure> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcFailure::IdTokenMalformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| OidcFailure::IdTokenMalformed)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| OidcFailure::IdTokenMalformed)?;
    let alg = v
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(OidcFailure::IdTokenMalformed)?
        .to_string();
    let kid = match v.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(OidcFailure::IdTokenMalformed),
    };
    Ok(TokenHeader { alg, kid })
}

/// Refuses algorithms outside the provider's allow-list (which can never hold `none` or
/// HS*), and returns the library's name for the accepted one.
pub fn allowed_algorithm(alg: &str, allowed: &[String]) -> Result<Algorithm, OidcFailure> {
    if !allowed.iter().any(|a| a == alg) {
        return Err(OidcFailure::IdTokenAlgorithm);
    }
    let parsed: Algorithm = alg.parse().map_err(|_| OidcFailure::IdTokenAlgorithm)?;
    if matches!(
        parsed,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(OidcFailure::IdTokenAlgorithm);
    }
    Ok(parsed)
}

/// Whether `alg` fits the key's type (RSA: RS/PS, EC: the curve's ES, OKP: EdDSA).
fn fits_key_type(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm::*;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
        }
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, ES256) | (EllipticCurve::P384, ES384)
        ),
        AlgorithmParameters::OctetKeyPair(_) => alg == EdDSA,
        AlgorithmParameters::OctetKey(_) => false,
    }
}

fn usable_for_signatures(jwk: &Jwk) -> bool {
    !matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature)
}

/// What key lookup found.
pub enum KeyLookup<'a> {
    Found(&'a Jwk),
    /// No key with this id (or, without an id, no single candidate): refresh the JWKS.
    Unknown,
}

/// Selects the key for `header`: by `kid`, or without one the only signing key that
/// fits the algorithm. A key that declares an algorithm must declare this one.
pub fn select_key<'a>(
    jwks: &'a JwkSet,
    header: &TokenHeader,
    alg: Algorithm,
) -> Result<KeyLookup<'a>, OidcFailure> {
    let key = match &header.kid {
        Some(kid) => jwks
            .keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid) && usable_for_signatures(k)),
        None => {
            let mut fitting = jwks
                .keys
                .iter()
                .filter(|k| usable_for_signatures(k) && fits_key_type(k, alg));
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    };
    let Some(key) = key else {
        return Ok(KeyLookup::Unknown);
    };
    if let Some(declared) = key.common.key_algorithm
        && !declared_matches(declared, alg)
    {
        return Err(OidcFailure::IdTokenAlgorithm);
    }
    if !fits_key_type(key, alg) {
        return Err(OidcFailure::IdTokenAlgorithm);
    }
    Ok(KeyLookup::Found(key))
}

fn declared_matches(declared: KeyAlgorithm, alg: Algorithm) -> bool {
    format!("{declared:?}") == format!("{alg:?}")
}

/// What the token must say.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// SHA-256 of the nonce sent with the authorization request.
    pub nonce_hash: &'a [u8],
    pub now_secs: i64,
    pub skew_secs: u64,
    /// When the sign-in started: a token issued before it is not this sign-in's.
    pub started_secs: i64,
}

/// Verifies signature and claims; returns the claims.
pub fn verify(
    token: &str,
    key: &Jwk,
    alg: Algorithm,
    expect: &Expectations<'_>,
) -> Result<Value, OidcFailure> {
    let decoding = DecodingKey::from_jwk(key).map_err(|_| OidcFailure::IdTokenUnknownKey)?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[expect.issuer]);
    validation.set_audience(&[expect.client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    // Times are checked below against the caller's clock, one clock for every check.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let data = jsonwebtoken::decode::<Value>(token, &decoding, &validation).map_err(|e| match e
        .kind()
    {
        ErrorKind::InvalidSignature => OidcFailure::IdTokenSignature,
        ErrorKind::ExpiredSignature => OidcFailure::IdTokenExpired,
        ErrorKind::ImmatureSignature => OidcFailure::IdTokenNotYetValid,
        ErrorKind::InvalidIssuer => OidcFailure::IdTokenIssuer,
        ErrorKind::InvalidAudience => OidcFailure::IdTokenAudience,
        ErrorKind::InvalidAlgorithm => OidcFailure::IdTokenAlgorithm,
        ErrorKind::MissingRequiredClaim(c) if c == "sub" => OidcFailure::IdTokenSubject,
        _ => OidcFailure::IdTokenMalformed,
    })?;
    let claims = data.claims;
    check_authorized_party(&claims, expect.client_id)?;
    let skew = i64::try_from(expect.skew_secs).unwrap_or(i64::MAX);
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = time("exp").ok_or(OidcFailure::IdTokenMalformed)?;
    if expect.now_secs > exp.saturating_add(skew) {
        return Err(OidcFailure::IdTokenExpired);
    }
    if time("nbf").is_some_and(|nbf| nbf > expect.now_secs.saturating_add(skew)) {
        return Err(OidcFailure::IdTokenNotYetValid);
    }
    let iat = time("iat").ok_or(OidcFailure::IdTokenMalformed)?;
    if iat > expect.now_secs.saturating_add(skew) {
        return Err(OidcFailure::IdTokenNotYetValid);
    }
    if iat < expect.started_secs.saturating_sub(skew) {
        return Err(OidcFailure::IdTokenTooOld);
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(OidcFailure::IdTokenNonce)?;
    if !constant_time_eq(&sha256(nonce.as_bytes()), expect.nonce_hash) {
        return Err(OidcFailure::IdTokenNonce);
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() && sub.len() <= 255 => {}
        _ => return Err(OidcFailure::IdTokenSubject),
    }
    Ok(claims)
}

/// `azp` must be our client id when present, and is required when `aud` names others.
fn check_authorized_party(claims: &Value, client_id: &str) -> Result<(), OidcFailure> {
    let several_audiences = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(OidcFailure::IdTokenAuthorizedParty),
        None if several_audiences => Err(OidcFailure::IdTokenAuthorizedParty),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    /// A P-256 test key (PKCS#8) and its public coordinates.
    pub(crate) const TEST_EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghS6t72sBncAgyqrr
+zSVC0Xjzkd9KXJk57BKM8I4TdShRANCAAQU3vZDNZ/dQPY0SqEjCXx8AuWYh21N
Rfxl4BKhQOsUuJ72SrsQjKu2TchCe1rzjq90Jp2I1saLqgvQ5MYviTDy
-----END PRIVATE KEY-----
";
    const TEST_EC_X: &str = "FN72QzWf3UD2NEqhIwl8fALlmIdtTUX8ZeASoUDrFLg";
    const TEST_EC_Y: &str = "nvZKuxCMq7ZNyEJ7WvOOr3QmnYjWxouqC9Dkxi-JMPI";
    /// Another P-256 key, not in the JWKS.
    const ROGUE_EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqvDOsCgQiD4grHBj
BTOgvYe0gMuGxhqcSYDvqEJJIsahRANCAAS4KrlVpXir2gECEV8XWJL31NEzDMe2
8aS2RqewajZr8ERsBQAVusWILbdjpr1xKi5CLHFjPzPPmi+MpTC6e1q1
-----END PRIVATE KEY-----
";

    const NOW: i64 = 1_800_000_000;

    fn jwks(alg: Option<&str>) -> JwkSet {
        let mut key = json!({"kty": "EC", "crv": "P-256", "x": TEST_EC_X, "y": TEST_EC_Y, "kid": "k1", "use": "sig"});
        if let Some(a) = alg {
            key["alg"] = json!(a);
        }
        serde_json::from_value(json!({"keys": [key]})).unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": "https://idp.example", "aud": "aegis", "sub": "user-1",
            "iat": NOW - 5, "exp": NOW + 300, "nonce": "n-0S6_WzA2Mj",
            "email": "ada@example.com",
        })
    }

    fn sign(claims: &Value, pem: &str, kid: Option<&str>) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(
            &h,
            claims,
            &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn check(token: &str, set: &JwkSet) -> Result<Value, OidcFailure> {
        let header = peek_header(token)?;
        let alg = allowed_algorithm(&header.alg, &["ES256".into(), "RS256".into()])?;
        let key = match select_key(set, &header, alg)? {
            KeyLookup::Found(k) => k,
            KeyLookup::Unknown => return Err(OidcFailure::IdTokenUnknownKey),
        };
        let nonce_hash = sha256(b"n-0S6_WzA2Mj");
        verify(
            token,
            key,
            alg,
            &Expectations {
                issuer: "https://idp.example",
                client_id: "aegis",
                nonce_hash: &nonce_hash,
                now_secs: NOW,
                skew_secs: 60,
                started_secs: NOW - 30,
            },
        )
    }

    fn with(patch: Value) -> Value {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn a_good_token_verifies() {
        let set = jwks(Some("ES256"));
        let c = check(&sign(&claims(), TEST_EC_PEM, Some("k1")), &set).unwrap();
        assert_eq!(c["sub"], "user-1");
        // Without a kid, the only fitting key is used.
        assert!(check(&sign(&claims(), TEST_EC_PEM, None), &jwks(None)).is_ok());
    }

    #[test]
    fn every_bad_token_has_its_reason() {
        use OidcFailure::*;
        let set = jwks(Some("ES256"));
        let bad = |c: Value| check(&sign(&c, TEST_EC_PEM, Some("k1")), &set).unwrap_err();
        assert_eq!(bad(with(json!({"nonce": "other"}))), IdTokenNonce);
        assert_eq!(bad(with(json!({"nonce": null}))), IdTokenNonce);
        assert_eq!(
            bad(with(json!({"iss": "https://evil.example"}))),
            IdTokenIssuer
        );
        assert_eq!(bad(with(json!({"aud": "someone-else"}))), IdTokenAudience);
        assert_eq!(
            bad(with(json!({"aud": ["aegis", "other"]}))),
            IdTokenAuthorizedParty
        );
        assert!(
            check(
                &sign(
                    &with(json!({"aud": ["aegis", "other"], "azp": "aegis"})),
                    TEST_EC_PEM,
                    Some("k1")
                ),
                &set
            )
            .is_ok()
        );
        assert_eq!(bad(with(json!({"azp": "other"}))), IdTokenAuthorizedParty);
        assert_eq!(
            bad(with(json!({"exp": NOW - 3600, "iat": NOW - 7200}))),
            IdTokenExpired
        );
        assert_eq!(
            bad(with(json!({"iat": NOW + 3600, "exp": NOW + 7200}))),
            IdTokenNotYetValid
        );
        assert_eq!(bad(with(json!({"iat": NOW - 3600}))), IdTokenTooOld);
        assert_eq!(bad(with(json!({"nbf": NOW + 3600}))), IdTokenNotYetValid);
        assert_eq!(bad(with(json!({"sub": ""}))), IdTokenSubject);
        assert_eq!(bad(with(json!({"sub": null}))), IdTokenSubject);
        // Signed by a key the JWKS does not have, under a known and an unknown kid.
        assert_eq!(
            check(&sign(&claims(), ROGUE_EC_PEM, Some("k1")), &set).unwrap_err(),
            IdTokenSignature
        );
        assert_eq!(
            check(&sign(&claims(), ROGUE_EC_PEM, Some("rogue")), &set).unwrap_err(),
            IdTokenUnknownKey
        );
        // One signature character changed (not the last: its low bits are padding).
        let mut t = sign(&claims(), TEST_EC_PEM, Some("k1"));
        let at = t.rfind('.').unwrap() + 5;
        let replacement = if &t[at..=at] == "A" { "B" } else { "A" };
        t.replace_range(at..=at, replacement);
        assert_eq!(check(&t, &set).unwrap_err(), IdTokenSignature);
    }

    #[test]
    fn algorithm_comes_from_the_key_not_the_token() {
        use OidcFailure::*;
        let set = jwks(Some("ES256"));
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        let none = format!(
            "{}.{body}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#)
        );
        assert_eq!(check(&none, &set).unwrap_err(), IdTokenAlgorithm);
        let hs = format!(
            "{}.{body}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#)
        );
        assert_eq!(check(&hs, &set).unwrap_err(), IdTokenAlgorithm);
        // HS256 is refused even if a provider's list were to name it.
        assert_eq!(
            allowed_algorithm("HS256", &["HS256".into()]).unwrap_err(),
            IdTokenAlgorithm
        );
        // RS256 is allowed by the settings but does not fit an EC key.
        let rs = format!(
            "{}.{body}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#)
        );
        assert_eq!(check(&rs, &set).unwrap_err(), IdTokenAlgorithm);
        assert_eq!(check("not-a-jwt", &set).unwrap_err(), IdTokenMalformed);
        assert_eq!(check("a.b.c.d", &set).unwrap_err(), IdTokenMalformed);
    }
}

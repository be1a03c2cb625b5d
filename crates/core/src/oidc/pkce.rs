//! PKCE (RFC 7636) with the S256 method only: the verifier is 43 base64url characters
//! from 32 random bytes, the challenge is BASE64URL(SHA-256(verifier)).

use crate::Result;
use crate::crypto::{b64url, random_token, sha256};

/// A fresh code verifier (256 random bits, 43 characters).
pub fn new_verifier() -> Result<String> {
    random_token()
}

/// The S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    b64url(&sha256(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifier_has_the_required_length_and_alphabet() {
        let v = new_verifier().unwrap();
        assert!((43..=128).contains(&v.len()));
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
        assert_ne!(v, new_verifier().unwrap());
    }
}

//! MFA backup codes: ten single-use codes, shown once, stored only as hashes.
//!
//! Each code carries 50 random bits (ten base32 characters, shown as `xxxxx-xxxxx`), far
//! beyond what online guessing under rate limits can reach, so a fast keyed hash is
//! enough: HMAC-SHA-256 with the server secret, so a database dump alone cannot test
//! guesses offline. Comparison is constant-time over every stored hash.

use crate::Result;
use crate::crypto::{constant_time_eq, hmac_sha256, random_bytes};

/// Codes per set.
pub const CODES_PER_SET: usize = 10;

/// The RFC 4648 base32 alphabet in lower case: no 0, 1, 8 or 9 to mistake for o, l, b
/// or g when typing a code from paper.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A fresh set of codes, as shown to the user once.
pub fn generate() -> Result<Vec<String>> {
    (0..CODES_PER_SET).map(|_| generate_one()).collect()
}

fn generate_one() -> Result<String> {
    let bytes: [u8; 10] = random_bytes()?;
    let chars: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    Ok(format!("{}-{}", &chars[..5], &chars[5..]))
}

/// The canonical form users may type loosely: case, spaces and dashes do not matter.
pub fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The stored form of a code.
pub fn hash(secret_key: &[u8], code: &str) -> [u8; 32] {
    hmac_sha256(
        secret_key,
        format!("backup-code:{}", normalize(code)).as_bytes(),
    )
}

/// The index of the stored hash `code` matches, if any; every hash is compared so the
/// time taken does not depend on which one matched.
pub fn find(secret_key: &[u8], code: &str, stored: &[[u8; 32]]) -> Option<usize> {
    let candidate = hash(secret_key, code);
    let mut found = None;
    for (i, h) in stored.iter().enumerate() {
        if constant_time_eq(&candidate, h) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"server secret key for tests only";

    #[test]
    fn a_set_has_ten_distinct_well_formed_codes() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), CODES_PER_SET);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), CODES_PER_SET);
        for c in &codes {
            assert_eq!(c.len(), 11);
            assert_eq!(&c[5..6], "-");
            assert!(normalize(c).bytes().all(|b| ALPHABET.contains(&b)));
        }
    }

    #[test]
    fn codes_match_their_hash_only_and_loosely_typed() {
        let codes = generate().unwrap();
        let stored: Vec<[u8; 32]> = codes.iter().map(|c| hash(KEY, c)).collect();
        assert_eq!(find(KEY, &codes[3], &stored), Some(3));
        let loose = format!(" {} ", codes[7].to_uppercase().replace('-', " "));
        assert_eq!(find(KEY, &loose, &stored), Some(7));
        assert_eq!(find(KEY, "aaaaa-aaaaa", &stored), None);
        assert_eq!(find(b"another key", &codes[3], &stored), None);
    }
}

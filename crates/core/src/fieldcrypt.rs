//! Field encryption: AES-256-GCM with a key ring.
//!
//! A ciphertext is `<key id>.<base64url(nonce || ciphertext || tag)>`: the key id says
//! which key decrypts it, so a new key can take over writes while older keys still
//! read, and a rotation job re-encrypts rows at its own pace. The associated data binds
//! the value to its place — tenant, table, column and row id — so a ciphertext copied to
//! another row, column or tenant fails to decrypt instead of being silently accepted.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::{CoreError, Result};

/// AES-GCM nonce length: 96 random bits per message.
const NONCE_LEN: usize = 12;

/// Where an encrypted value lives; authenticated with it.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    pub tenant: &'a str,
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
}

impl Place<'_> {
    /// Length-prefixed fields, so that no two places share an encoding.
    fn associated_data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [self.tenant, self.table, self.column, self.row] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// A key id: short, printable, and free of the `.` separator.
fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The keys that decrypt, and the one that encrypts.
#[derive(Clone)]
pub struct KeyRing {
    keys: BTreeMap<String, Zeroizing<[u8; 32]>>,
    active: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

impl KeyRing {
    /// Builds a ring from `(id, base64url or standard base64 of 32 bytes)` pairs; the
    /// active key must be among them.
    pub fn new<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
        active: &str,
    ) -> Result<KeyRing> {
        let mut ring = BTreeMap::new();
        for (id, encoded) in keys {
            if !valid_key_id(id) {
                return Err(CoreError::Invalid(format!(
                    "encryption key id '{id}': use 1-32 letters, digits, '-' or '_'"
                )));
            }
            let bytes = Zeroizing::new(decode_key(encoded).ok_or_else(|| {
                CoreError::Invalid(format!(
                    "encryption key '{id}': must be 32 bytes, base64 encoded (aegis secrets generate)"
                ))
            })?);
            if ring.insert(id.to_string(), bytes).is_some() {
                return Err(CoreError::Invalid(format!(
                    "encryption key id '{id}' appears twice"
                )));
            }
        }
        if !ring.contains_key(active) {
            return Err(CoreError::Invalid(format!(
                "encryption active key '{active}' is not among the keys"
            )));
        }
        Ok(KeyRing {
            keys: ring,
            active: active.to_string(),
        })
    }

    /// The id of the key new ciphertexts use.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    fn cipher(&self, id: &str) -> Result<Aes256Gcm> {
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| CoreError::Internal(format!("unknown encryption key id '{id}'")))?;
        Aes256Gcm::new_from_slice(key.as_ref())
            .map_err(|_| CoreError::Internal("encryption key length".into()))
    }

    /// Encrypts `plaintext` for `place` with the active key.
    pub fn encrypt(&self, plaintext: &[u8], place: &Place<'_>) -> Result<String> {
        let nonce: [u8; NONCE_LEN] = crate::crypto::random_bytes()?;
        let aad = place.associated_data();
        let sealed = self
            .cipher(&self.active)?
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CoreError::Internal("encryption failed".into()))?;
        let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        Ok(format!("{}.{}", self.active, URL_SAFE_NO_PAD.encode(body)))
    }

    /// Decrypts a value stored at `place`. Fails for a tampered value, a value moved
    /// from another place, or an unknown key id.
    pub fn decrypt(&self, stored: &str, place: &Place<'_>) -> Result<Zeroizing<Vec<u8>>> {
        let (id, body) = stored
            .split_once('.')
            .ok_or_else(|| CoreError::Internal("encrypted field: no key id".into()))?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CoreError::Internal("encrypted field: not base64url".into()))?;
        if body.len() < NONCE_LEN + 16 {
            return Err(CoreError::Internal("encrypted field: too short".into()));
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| CoreError::Internal("encrypted field: nonce".into()))?;
        let aad = place.associated_data();
        self.cipher(id)?
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                CoreError::Internal(
                    "encrypted field: authentication failed (tampered or moved)".into(),
                )
            })
    }

    /// Whether `stored` was written with a key other than the active one (rotation).
    pub fn needs_rotation(&self, stored: &str) -> bool {
        stored
            .split_once('.')
            .is_none_or(|(id, _)| id != self.active)
    }
}

fn decode_key(encoded: &str) -> Option<[u8; 32]> {
    let encoded = encoded.trim();
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(encoded))
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const K2: &str = "HxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo";

    fn place(row: &str) -> Place<'_> {
        Place {
            tenant: "t1",
            table: "totp_secrets",
            column: "secret",
            row,
        }
    }

    #[test]
    fn round_trip_with_key_id_prefix() {
        let ring = KeyRing::new([("k1", K1)], "k1").unwrap();
        let sealed = ring.encrypt(b"JBSWY3DPEHPK3PXP", &place("u1")).unwrap();
        assert!(sealed.starts_with("k1."));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        let opened = ring.decrypt(&sealed, &place("u1")).unwrap();
        assert_eq!(opened.as_slice(), b"JBSWY3DPEHPK3PXP");
        // A fresh nonce every time.
        assert_ne!(
            sealed,
            ring.encrypt(b"JBSWY3DPEHPK3PXP", &place("u1")).unwrap()
        );
    }

    #[test]
    fn tampering_and_moving_fail() {
        let ring = KeyRing::new([("k1", K1)], "k1").unwrap();
        let sealed = ring.encrypt(b"secret", &place("u1")).unwrap();
        assert!(
            ring.decrypt(&sealed, &place("u2")).is_err(),
            "moved to another row"
        );
        let other_tenant = Place {
            tenant: "t2",
            ..place("u1")
        };
        assert!(ring.decrypt(&sealed, &other_tenant).is_err());
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(ring.decrypt(&tampered, &place("u1")).is_err());
        assert!(ring.decrypt("k9.AAAA", &place("u1")).is_err());
        assert!(ring.decrypt("no-separator", &place("u1")).is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = KeyRing::new([("k1", K1)], "k1").unwrap();
        let sealed = old.encrypt(b"secret", &place("u1")).unwrap();
        let new = KeyRing::new([("k1", K1), ("k2", K2)], "k2").unwrap();
        assert!(new.needs_rotation(&sealed));
        assert_eq!(
            new.decrypt(&sealed, &place("u1")).unwrap().as_slice(),
            b"secret"
        );
        let resealed = new.encrypt(b"secret", &place("u1")).unwrap();
        assert!(resealed.starts_with("k2.") && !new.needs_rotation(&resealed));
        assert!(
            old.decrypt(&resealed, &place("u1")).is_err(),
            "old ring lacks k2"
        );
    }

    #[test]
    fn bad_rings_are_refused() {
        assert!(KeyRing::new([("k1", K1)], "k2").is_err());
        assert!(KeyRing::new([("k.1", K1)], "k.1").is_err());
        assert!(KeyRing::new([("k1", "c2hvcnQ")], "k1").is_err());
        assert!(KeyRing::new([("k1", K1), ("k1", K2)], "k1").is_err());
        let debug = format!("{:?}", KeyRing::new([("k1", K1)], "k1").unwrap());
        assert!(!debug.contains(K1));
    }
}

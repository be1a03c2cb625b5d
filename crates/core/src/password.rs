//! Password policy and hashing. Argon2id (OWASP: m=19456 KiB, t=2, p=1) runs on the
//! blocking pool behind a semaphore so a login flood cannot exhaust memory or CPU; legacy
//! bcrypt hashes verify once and are then upgraded.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::model::HashAlgorithm;
use crate::{CoreError, Result};

/// Argon2id memory cost in KiB (OWASP minimum configuration).
pub const ARGON2_M_COST: u32 = 19_456;
/// Argon2id iterations.
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id parallelism.
pub const ARGON2_P_COST: u32 = 1;

/// Rules a new password must satisfy.
#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    /// Minimum zxcvbn score (0..=4).
    pub min_strength: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: 128,
            min_strength: 3,
        }
    }
}

impl PasswordPolicy {
    /// Checks length and strength; `context` holds words (like the e-mail) the password
    /// must not be built from.
    pub fn check(&self, password: &str, context: &[&str]) -> Result<()> {
        let len = password.chars().count();
        if len < self.min_length || len > self.max_length {
            return Err(CoreError::Invalid(format!(
                "password: must be between {} and {} characters",
                self.min_length, self.max_length
            )));
        }
        // Length is bounded above, so zxcvbn's work is bounded too.
        let score: u8 = zxcvbn::zxcvbn(password, context).score().into();
        if score < self.min_strength {
            return Err(CoreError::Invalid(format!(
                "password: too weak (strength {score} of 4, at least {} required); use a longer passphrase",
                self.min_strength
            )));
        }
        Ok(())
    }
}

/// Outcome of verifying a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password.
    No,
    /// Right password, hash is current.
    Yes,
    /// Right password, but the stored hash should be replaced by a fresh Argon2id hash.
    YesNeedsRehash,
}

/// Hashes and verifies passwords with bounded concurrency.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real Argon2id hash of a random password, verified when the user does not exist
    /// so that response timing does not reveal which accounts exist.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("available_permits", &self.permits.available_permits())
            .finish()
    }
}

fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| CoreError::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &[u8]) -> Result<String> {
    let hash = argon2()?
        .hash_password(password)
        .map_err(|e| CoreError::Internal(format!("argon2 hash: {e}")))?;
    Ok(hash.to_string())
}

fn verify_blocking(password: &[u8], stored: &str, algorithm: HashAlgorithm) -> Result<Verified> {
    match algorithm {
        HashAlgorithm::Argon2id => {
            let Ok(parsed) = PasswordHash::new(stored) else {
                return Ok(Verified::No);
            };
            if argon2()?.verify_password(password, &parsed).is_err() {
                return Ok(Verified::No);
            }
            let current = Params::try_from(&parsed).ok().is_some_and(|p| {
                p.m_cost() == ARGON2_M_COST
                    && p.t_cost() == ARGON2_T_COST
                    && p.p_cost() == ARGON2_P_COST
            }) && parsed.algorithm.as_str() == "argon2id";
            Ok(if current {
                Verified::Yes
            } else {
                Verified::YesNeedsRehash
            })
        }
        HashAlgorithm::Bcrypt => match bcrypt::verify(password, stored) {
            Ok(true) => Ok(Verified::YesNeedsRehash),
            _ => Ok(Verified::No),
        },
    }
}

impl PasswordHasher {
    /// `concurrency` bounds simultaneous hash computations (each uses ~19 MiB).
    pub fn new(concurrency: usize) -> Result<Self> {
        let dummy = hash_blocking(&crate::crypto::random_bytes::<32>()?)?;
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy.into(),
        })
    }

    /// A sensible default concurrency: the number of cores.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CoreError::Internal("hasher closed".into()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| CoreError::Internal(format!("hash task: {e}")))?
    }

    /// Produces a PHC-format Argon2id hash.
    pub async fn hash(&self, password: &SecretString) -> Result<String> {
        let pw = password.expose_secret().as_bytes().to_vec();
        self.run(move || hash_blocking(&pw)).await
    }

    /// Verifies `password` against a stored hash.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: &str,
        algorithm: HashAlgorithm,
    ) -> Result<Verified> {
        let pw = password.expose_secret().as_bytes().to_vec();
        let stored = stored.to_string();
        self.run(move || verify_blocking(&pw, &stored, algorithm))
            .await
    }

    /// Spends the same work as a real verification, for unknown or locked accounts.
    pub async fn verify_dummy(&self, password: &SecretString) -> Result<()> {
        let dummy = self.dummy_hash.to_string();
        self.verify(password, &dummy, HashAlgorithm::Argon2id)
            .await
            .map(|_| ())
    }
}

/// Recognises the algorithm of an imported hash string.
pub fn detect_algorithm(hash: &str) -> Option<HashAlgorithm> {
    if hash.starts_with("$argon2id$") {
        Some(HashAlgorithm::Argon2id)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        Some(HashAlgorithm::Bcrypt)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rejects_short_long_and_weak() {
        let p = PasswordPolicy::default();
        assert!(p.check("short", &[]).is_err());
        assert!(p.check(&"x".repeat(129), &[]).is_err());
        assert!(p.check("password1", &[]).is_err());
        assert!(p.check("correct horse battery staple 42", &[]).is_ok());
    }

    #[test]
    fn argon2_round_trip_and_bcrypt_upgrade() {
        let h = hash_blocking(b"pw-one").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            verify_blocking(b"pw-one", &h, HashAlgorithm::Argon2id).unwrap(),
            Verified::Yes
        );
        assert_eq!(
            verify_blocking(b"pw-two", &h, HashAlgorithm::Argon2id).unwrap(),
            Verified::No
        );
        let b = bcrypt::hash("legacy", 4).unwrap();
        assert_eq!(detect_algorithm(&b), Some(HashAlgorithm::Bcrypt));
        assert_eq!(
            verify_blocking(b"legacy", &b, HashAlgorithm::Bcrypt).unwrap(),
            Verified::YesNeedsRehash
        );
        assert_eq!(
            verify_blocking(b"nope", &b, HashAlgorithm::Bcrypt).unwrap(),
            Verified::No
        );
    }
}

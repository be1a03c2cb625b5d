//! Aegis domain logic. This crate knows nothing about HTTP or SQL: the server crate maps
//! requests onto these services, the store crate implements the storage traits.

pub mod accounts;
pub mod audit;
pub mod backup_codes;
pub mod clock;
pub mod crypto;
pub mod email;
pub mod error;
pub mod fieldcrypt;
pub mod ids;
pub mod mail;
pub mod mfa;
pub mod model;
pub mod oidc;
pub mod password;
pub mod ratelimit;
pub mod recovery;
pub mod session_cache;
pub mod sessions;
pub mod store;
pub mod tenants;
pub mod totp;

pub use error::{CoreError, Result};

//! Integration tests: the real `aegis` binary on port 0, spoken to over HTTP, against a
//! fresh SQLite file or (when AEGIS_TEST_DATABASE_URL is set) a fresh PostgreSQL database.

mod harness;

mod accounts;
mod admission;
mod audit;
mod cli;
mod csrf;
mod input;
mod mfa;
mod oidc;
mod production;
mod ratelimit;
mod recovery;
mod session_cache;
mod sessions;
mod tenancy;

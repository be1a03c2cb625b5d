//! The Aegis server: configuration, HTTP API, CLI. `main.rs` only calls [`cli::run`].

pub mod allocator;
pub mod app;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod http;
pub mod mail;
pub mod oidc;
pub mod ratelimit;
pub mod session_sync;
pub mod telemetry;

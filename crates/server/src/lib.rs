//! The Aegis server: configuration, HTTP API, CLI. `main.rs` only calls [`cli::run`].

pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod mail;
pub mod ratelimit;
pub mod telemetry;

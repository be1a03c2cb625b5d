//! The `aegis` binary: parse arguments, hand over to the CLI.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One TLS crypto provider for every TLS client in the process (database, IdPs).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    aegis::cli::run(aegis::cli::Cli::parse())
}

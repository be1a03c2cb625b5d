//! The `aegis` binary: parse arguments, hand over to the CLI.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: a request allocates many small,
/// short-lived buffers (headers, JSON), and glibc's malloc/free showed at an eighth of
/// a session check's time in the profile.
#[global_allocator]
static ALLOCATOR: aegis::allocator::Mimalloc = aegis::allocator::Mimalloc;

fn main() -> ExitCode {
    // One TLS crypto provider for every TLS client in the process (database, IdPs).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    aegis::cli::run(aegis::cli::Cli::parse())
}

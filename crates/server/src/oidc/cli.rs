//! `aegis oidc ...`: manage a tenant's upstream providers from the command line. The
//! settings are the same JSON document the admin API takes; secrets may come from a
//! file or the environment instead of that document.

use std::io::Read;
use std::path::PathBuf;

use aegis_core::oidc::{ProviderInput, ProviderSettings};
use anyhow::Context;
use clap::Subcommand;
use secrecy::SecretString;

use crate::config::Config;

/// `aegis oidc` subcommands.
#[derive(Subcommand, Debug)]
pub enum OidcCommand {
    /// Create or replace a provider from a JSON settings document (see the README).
    Set {
        /// Provider name: the path segment of /auth/oidc/{name}/start.
        name: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The settings document; standard input when omitted.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Read the client secret from this file (instead of the document).
        #[arg(long)]
        client_secret_file: Option<PathBuf>,
        /// The client secret, from the environment (instead of the document).
        #[arg(
            long = "client-secret-env",
            env = "AEGIS_OIDC_CLIENT_SECRET",
            hide_env_values = true,
            hide = true
        )]
        client_secret_env: Option<String>,
        /// Read the private_key_jwt key (PEM) from this file.
        #[arg(long)]
        private_key_file: Option<PathBuf>,
    },
    /// List a tenant's providers (no secrets).
    List {
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Delete a provider, with its account links.
    Delete {
        name: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

fn read_secret(path: &PathBuf) -> anyhow::Result<SecretString> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(SecretString::from(text.trim().to_string()))
}

/// Runs an `aegis oidc` command.
pub async fn run(command: OidcCommand, cfg: Config) -> anyhow::Result<()> {
    let state = crate::app::build_state(cfg).await?;
    let meta = aegis_core::model::RequestMeta {
        request_id: None,
        ip: None,
        user_agent: Some("aegis-cli".into()),
    };
    match command {
        OidcCommand::Set {
            name,
            tenant,
            file,
            client_secret_file,
            client_secret_env,
            private_key_file,
        } => {
            let text = match &file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
            };
            let mut settings: ProviderSettings =
                serde_json::from_str(&text).context("provider settings")?;
            if let Some(path) = &client_secret_file {
                settings.client_secret = Some(read_secret(path)?);
            } else if let Some(secret) = client_secret_env.filter(|s| !s.is_empty()) {
                settings.client_secret = Some(SecretString::from(secret));
            }
            if let Some(path) = &private_key_file {
                settings.private_key_pem = Some(read_secret(path)?);
            }
            let tenant = crate::cli::find_tenant(&state, &tenant).await?;
            let (view, created) = state
                .oidc
                .set_provider(tenant, ProviderInput { name, settings }, None, &meta)
                .await?;
            let verb = if created { "created" } else { "updated" };
            println!("{verb} provider {} ({})", view.name, view.settings.issuer);
        }
        OidcCommand::List { tenant } => {
            let tenant = crate::cli::find_tenant(&state, &tenant).await?;
            for p in state.oidc.list_providers(tenant).await? {
                let status = if p.settings.enabled {
                    "enabled"
                } else {
                    "disabled"
                };
                println!(
                    "{}\t{}\t{}\t{status}",
                    p.name, p.settings.issuer, p.settings.client_id
                );
            }
        }
        OidcCommand::Delete { name, tenant } => {
            let tenant = crate::cli::find_tenant(&state, &tenant).await?;
            state
                .oidc
                .delete_provider(tenant, &name, None, &meta)
                .await?;
            println!("deleted provider {name}");
        }
    }
    Ok(())
}

//! Command-line interface: `serve`, `migrate`, `secrets generate`, `config check`,
//! `tenant ...`, `user ...`.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use aegis_core::accounts::{AccountOrigin, ImportedUser};
use aegis_core::model::{MfaPolicy, RequestMeta, Role};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::config::{Config, Mode, Overrides};

/// Aegis: authentication, sessions and API security for web applications, in one binary.
#[derive(Parser, Debug)]
#[command(name = "aegis", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, short, env = "AEGIS_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Override `mode` (development or production).
    #[arg(long, global = true, value_enum)]
    mode: Option<CliMode>,
    /// Override `listen`, e.g. 0.0.0.0:8080.
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Override `database_url` (sqlite://aegis.db or postgres://...).
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CliMode {
    Development,
    Production,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (migrates first unless migrate_on_start = false).
    Serve,
    /// Apply database migrations (as database_owner_url on PostgreSQL) and grant the
    /// application role.
    Migrate,
    /// Generate secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage a tenant's OpenID Connect providers.
    Oidc {
        #[command(subcommand)]
        command: crate::oidc::cli::OidcCommand,
    },
    /// Manage field-encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Re-encrypt every stored secret (TOTP secrets, provider client secrets and keys,
    /// provider refresh tokens) with the active key of
    /// encryption.keys; older keys must stay configured until this has run.
    Rotate,
}

#[derive(Subcommand, Debug)]
enum SecretsCommand {
    /// Print a strong random secret_key in environment and TOML form.
    Generate,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate the effective configuration and explain every problem (exit 1 if any).
    Check,
    /// Print every key with its default and environment variable.
    Reference,
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// URL-safe name used in /t/{slug}.
        slug: String,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// Host name that addresses this tenant.
        #[arg(long)]
        host: Option<String>,
    },
    /// List tenants.
    List,
    /// Disable a tenant: its users can no longer sign in or use sessions.
    Disable { slug: String },
    /// Re-enable a tenant.
    Enable { slug: String },
    /// Set who in a tenant must use MFA.
    MfaPolicy {
        slug: String,
        #[arg(value_enum)]
        policy: CliMfaPolicy,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CliMfaPolicy {
    Optional,
    Admins,
    Everyone,
}

impl From<CliMfaPolicy> for MfaPolicy {
    fn from(p: CliMfaPolicy) -> MfaPolicy {
        match p {
            CliMfaPolicy::Optional => MfaPolicy::Optional,
            CliMfaPolicy::Admins => MfaPolicy::Admins,
            CliMfaPolicy::Everyone => MfaPolicy::Everyone,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CliRole {
    Admin,
    Member,
}

impl From<CliRole> for Role {
    fn from(r: CliRole) -> Role {
        match r {
            CliRole::Admin => Role::Admin,
            CliRole::Member => Role::Member,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ImportFormat {
    Jsonl,
    Csv,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, default_value = "member")]
        role: CliRole,
    },
    /// Import users with existing password hashes (bcrypt or argon2id): JSON lines
    /// `{"email": .., "password_hash": .., "role": "member"}` or CSV with a header
    /// `email,password_hash[,role]`. All rows or none.
    Import {
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ImportFormat,
        file: PathBuf,
    },
}

fn cli_meta() -> RequestMeta {
    RequestMeta {
        request_id: None,
        ip: None,
        user_agent: Some("aegis-cli".into()),
    }
}

impl Cli {
    fn load_config(&self) -> anyhow::Result<Config> {
        let flags = Overrides {
            mode: self.global.mode.map(|m| match m {
                CliMode::Development => Mode::Development,
                CliMode::Production => Mode::Production,
            }),
            listen: self.global.listen.clone(),
            database_url: self.global.database_url.clone(),
        };
        Config::load(self.global.config.as_deref(), std::env::vars(), &flags)
            .map_err(anyhow::Error::msg)
    }
}

/// Loads and validates configuration, printing one line per problem.
fn checked_config(cli: &Cli) -> Result<Config, ExitCode> {
    let cfg = match cli.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(1));
        }
    };
    let problems = cfg.problems();
    if !problems.is_empty() {
        let mode = match cfg.mode {
            Mode::Production => "production",
            Mode::Development => "development",
        };
        eprintln!("error: refusing to start: configuration is not valid for {mode} mode:");
        for p in &problems {
            eprintln!("error: {p}");
        }
        return Err(ExitCode::from(1));
    }
    Ok(cfg)
}

/// Entry point after argument parsing.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Secrets {
        command: SecretsCommand::Generate,
    } = &cli.command
    {
        let generated = aegis_core::crypto::random_bytes::<48>()
            .and_then(|s| Ok((s, aegis_core::crypto::random_bytes::<32>()?)));
        return match generated {
            Ok((secret, field_key)) => {
                let key = aegis_core::crypto::b64url(&secret);
                // Key ids name keys in stored ciphertexts; a rotation adds a new id.
                let id = format!("k{}", aegis_core::clock::now_millis() / 1000);
                let field_key = format!("{id}:{}", aegis_core::crypto::b64url(&field_key));
                println!(
                    "# Environment:\nAEGIS_SECRET_KEY={key}\nAEGIS_ENCRYPTION_KEYS={field_key}\n\n\
                     # or in aegis.toml:\nsecret_key = \"{key}\"\n\n[encryption]\nkeys = [\"{field_key}\"]"
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Command::Config {
        command: ConfigCommand::Reference,
    } = &cli.command
    {
        print!("{}", crate::config::reference());
        return ExitCode::SUCCESS;
    }
    let cfg = match checked_config(&cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Command::Config {
        command: ConfigCommand::Check,
    } = &cli.command
    {
        println!("configuration ok ({:?} mode)", cfg.mode);
        println!("{}", toml::to_string_pretty(&cfg).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    crate::telemetry::init(&cfg);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command, cfg: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => crate::app::serve(cfg).await,
        Command::Migrate => {
            let owner = cfg
                .database_owner_url
                .as_ref()
                .map_or(cfg.database_url.as_str(), |s| s.0.as_str());
            let applied = aegis_store::migrate(owner, &cfg.database_url).await?;
            if applied.is_empty() {
                println!("database is up to date");
            }
            for m in applied {
                println!("applied {m}");
            }
            Ok(())
        }
        Command::Tenant { command } => tenant(command, cfg).await,
        Command::User { command } => user(command, cfg).await,
        Command::Oidc { command } => crate::oidc::cli::run(command, cfg).await,
        Command::Keys {
            command: KeysCommand::Rotate,
        } => rotate_keys(cfg).await,
        Command::Secrets { .. } | Command::Config { .. } => Ok(()),
    }
}

/// Re-encrypts every tenant's stored secrets with the active key.
async fn rotate_keys(cfg: Config) -> anyhow::Result<()> {
    let state = crate::app::build_state(cfg).await?;
    let mut total = 0;
    for t in state.tenants.list().await? {
        let n = aegis_core::mfa::rotate_keys(state.store.as_ref(), &state.keys, t.id).await?
            + aegis_core::oidc::rotate_keys(state.store.as_ref(), &state.keys, t.id).await?;
        if n > 0 {
            println!("tenant {}: re-encrypted {n} secrets", t.slug);
        }
        total += n;
    }
    println!(
        "re-encrypted {total} secrets with key '{}'",
        state.keys.active_id()
    );
    Ok(())
}

async fn tenant(command: TenantCommand, cfg: Config) -> anyhow::Result<()> {
    let state = crate::app::build_state(cfg).await?;
    let system = state.default_tenant.id;
    let meta = cli_meta();
    match command {
        TenantCommand::Create { slug, name, host } => {
            let name = name.unwrap_or_else(|| slug.clone());
            let t = state
                .tenants
                .create(system, None, &slug, &name, host.as_deref(), &meta)
                .await?;
            println!("created tenant {} ({})", t.slug, t.id);
        }
        TenantCommand::List => {
            for t in state.tenants.list().await? {
                let status = if t.disabled { "disabled" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    t.slug,
                    t.id,
                    status,
                    t.host.as_deref().unwrap_or("-"),
                    t.name
                );
            }
        }
        TenantCommand::Disable { slug } => {
            state
                .tenants
                .set_disabled(system, None, &slug, true, &meta)
                .await?;
            println!("disabled tenant {slug}");
        }
        TenantCommand::MfaPolicy { slug, policy } => {
            let tenant = find_tenant(&state, &slug).await?;
            let policy = MfaPolicy::from(policy);
            state
                .tenants
                .set_mfa_policy(tenant, None, policy, &meta)
                .await?;
            println!("tenant {slug}: mfa policy {}", policy.as_str());
        }
        TenantCommand::Enable { slug } => {
            state
                .tenants
                .set_disabled(system, None, &slug, false, &meta)
                .await?;
            println!("enabled tenant {slug}");
        }
    }
    Ok(())
}

/// The id of the tenant named `slug`, or an error naming it.
pub(crate) async fn find_tenant(
    state: &crate::http::state::AppState,
    slug: &str,
) -> anyhow::Result<aegis_core::ids::TenantId> {
    Ok(state
        .store
        .tenant_by_slug(slug)
        .await?
        .with_context(|| format!("tenant '{slug}' not found"))?
        .id)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRow {
    email: String,
    password_hash: String,
    #[serde(default)]
    role: Option<Role>,
}

fn parse_import(format: ImportFormat, text: &str) -> anyhow::Result<Vec<ImportedUser>> {
    let mut rows = Vec::new();
    match format {
        ImportFormat::Jsonl => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let r: ImportRow = serde_json::from_str(line)
                    .with_context(|| format!("line {}: not a valid user object", i + 1))?;
                rows.push(ImportedUser {
                    email: r.email,
                    password_hash: r.password_hash,
                    role: r.role.unwrap_or(Role::Member),
                });
            }
        }
        ImportFormat::Csv => {
            let mut lines = text.lines();
            let header: Vec<String> = lines
                .next()
                .context("empty CSV file")?
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
            let col = |name: &str| header.iter().position(|h| h == name);
            let (email, hash) = match (col("email"), col("password_hash")) {
                (Some(e), Some(h)) => (e, h),
                _ => bail!("CSV header must contain email and password_hash"),
            };
            let role = col("role");
            for (i, line) in lines.enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                // bcrypt/argon2 hashes and e-mail addresses contain no commas.
                let cells: Vec<&str> = line.split(',').map(str::trim).collect();
                let get = |c: usize| cells.get(c).copied().unwrap_or("");
                let role = match role.map(get) {
                    None | Some("") => Role::Member,
                    Some(r) => Role::parse(r)
                        .with_context(|| format!("line {}: role must be admin or member", i + 2))?,
                };
                rows.push(ImportedUser {
                    email: get(email).to_string(),
                    password_hash: get(hash).to_string(),
                    role,
                });
            }
        }
    }
    Ok(rows)
}

async fn user(command: UserCommand, cfg: Config) -> anyhow::Result<()> {
    let state = crate::app::build_state(cfg).await?;
    let meta = cli_meta();
    match command {
        UserCommand::Create {
            tenant,
            email,
            role,
        } => {
            let tenant = find_tenant(&state, &tenant).await?;
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = SecretString::from(line.trim_end_matches(['\r', '\n']).to_string());
            let user = state
                .accounts
                .register(
                    tenant,
                    &email,
                    &password,
                    AccountOrigin::by_operator(role.into(), None),
                    &meta,
                )
                .await?;
            println!("created user {} ({})", user.email, user.id);
        }
        UserCommand::Import {
            tenant,
            format,
            file,
        } => {
            let tenant = find_tenant(&state, &tenant).await?;
            let mut text = String::new();
            std::fs::File::open(&file)
                .and_then(|mut f| f.read_to_string(&mut text))
                .with_context(|| format!("reading {}", file.display()))?;
            let rows = parse_import(format, &text)?;
            let n = state.accounts.import(tenant, rows, &meta).await?;
            println!("imported {n} users");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn csv_import_parses_roles() {
        let rows = parse_import(
            ImportFormat::Csv,
            "email,password_hash,role\na@example.com,$2b$04$x,admin\nb@example.com,$2b$04$y,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].role, Role::Admin);
        assert_eq!(rows[1].role, Role::Member);
    }
}

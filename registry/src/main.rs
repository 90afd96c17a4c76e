//! `berth-registry`: load configuration, start tracing, serve the `/v2/` API.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Berth's OCI/Docker registry data plane.
#[derive(Parser)]
#[command(name = "berth-registry", version, about)]
struct Cli {
    #[command(flatten)]
    common: berth_server::CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Development only, until berth-auth exists: create (once) a local signing key and print
    /// a one-hour token for a repository. Serve with `BERTH_TOKEN_PUBLIC_KEY_FILE=<key>.pub`.
    DevToken {
        /// Repository name, e.g. `demo/app`.
        repository: String,
        /// Comma-separated actions.
        #[arg(default_value = "pull,push")]
        actions: String,
        /// Private key file (its public half is written beside it with `.pub` appended).
        #[arg(long, default_value = "data/dev-token-key.pem")]
        key_file: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg: berth_registry::Config = berth_server::load_config(cli.common.config.as_deref())?;
    berth_server::init_tracing(cfg.log_format.is_json());
    berth_server::install_panic_hook();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let db = berth_db::connect(cfg.database_url.expose_secret()).await?;
            berth_db::migrate(&db).await?;
            tracing::info!("migrations applied");
        }
        Command::DevToken {
            repository,
            actions,
            key_file,
        } => {
            let key = dev_key(&key_file)?;
            let actions: Vec<&str> = actions.split(',').collect();
            let issuer = berth_token::Issuer::new(
                key,
                cfg.token_issuer,
                cfg.token_service,
                std::time::Duration::from_secs(3600),
            );
            let (token, _) = issuer.issue(
                Some("dev".into()),
                Some("none".into()),
                vec![berth_token::Access::repository(repository, &actions)],
            )?;
            println!("{token}");
        }
        Command::Serve => {
            let addr = cfg.registry_addr.clone();
            let app = berth_registry::Application::build(cfg, !cli.common.no_migrate).await?;
            tracing::info!(address = %addr, port = app.port(), "berth-registry listening");
            app.run_until_stopped().await?;
        }
    }
    Ok(())
}

/// Load the development signing key, creating it (and its `.pub`) on first use.
fn dev_key(path: &std::path::Path) -> anyhow::Result<berth_token::SigningKey> {
    use anyhow::Context;
    if let Ok(pem) = std::fs::read_to_string(path) {
        return Ok(berth_token::SigningKey::from_pkcs8_pem(&pem)?);
    }
    let key = berth_token::SigningKey::generate();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, key.to_pkcs8_pem()?)
        .with_context(|| format!("writing {}", path.display()))?;
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    std::fs::write(&public, key.public_key().to_pem())?;
    Ok(key)
}

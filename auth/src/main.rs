//! `berth-auth`: load configuration, start tracing, serve or run an operator command.

use clap::{Parser, Subcommand};

/// Berth's control plane.
#[derive(Parser)]
#[command(name = "berth-auth", version, about)]
struct Cli {
    #[command(flatten)]
    common: berth_server::CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Token signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Sign new tokens with a new key; the old one stays published until its tokens expire.
    Rotate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg: berth_auth::Config = berth_server::load_config(cli.common.config.as_deref())?;
    berth_server::init_tracing(cfg.log_format == "json");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let db = berth_db::connect(&cfg.database_url).await?;
            berth_db::migrate(&db).await?;
        }
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let db = berth_db::connect(&cfg.database_url).await?;
            if !cli.common.no_migrate {
                berth_db::migrate(&db).await?;
            }
            let key = berth_auth::keys::rotate(&db).await?;
            println!("{}", key.kid());
        }
        Command::Serve => {
            let addr = cfg.auth_addr.clone();
            let app = berth_auth::Application::build(cfg, !cli.common.no_migrate).await?;
            tracing::info!(address = %addr, port = app.port(), "berth-auth listening");
            app.run_until_stopped().await?;
        }
    }
    Ok(())
}

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
    /// Personal access tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Sign new tokens with a new key; the old one stays published until its tokens expire.
    Rotate,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a personal access token and print it (alone) on stdout.
    Create {
        /// Owner's username.
        #[arg(long)]
        user: String,
        /// Comma-separated scopes (api, read_api, read_registry, write_registry, ...).
        #[arg(long)]
        scopes: String,
        /// Expiry date (YYYY-MM-DD, midnight UTC).
        #[arg(long)]
        expires_at: Option<String>,
        /// Token name.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a user; the password is read from BERTH_NEW_USER_PASSWORD or stdin.
    Create {
        /// Username.
        #[arg(long)]
        username: String,
        /// Email.
        #[arg(long)]
        email: String,
        /// Make the user an instance administrator.
        #[arg(long)]
        admin: bool,
    },
}

async fn database(
    cfg: &berth_auth::Config,
    common: &berth_server::CommonArgs,
) -> anyhow::Result<berth_db::Db> {
    let db = berth_db::connect(cfg.database_url.expose_secret()).await?;
    if !common.no_migrate {
        berth_db::migrate(&db).await?;
    }
    Ok(db)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg: berth_auth::Config = berth_server::load_config(cli.common.config.as_deref())?;
    berth_server::init_tracing(cfg.log_format.is_json());
    berth_server::install_panic_hook();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let db = berth_db::connect(cfg.database_url.expose_secret()).await?;
            berth_db::migrate(&db).await?;
        }
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let db = database(&cfg, &cli.common).await?;
            let key = berth_auth::keys::rotate(&db).await?;
            println!("{}", key.kid());
        }
        Command::Token {
            action:
                TokenAction::Create {
                    user,
                    scopes,
                    expires_at,
                    name,
                },
        } => {
            let db = database(&cfg, &cli.common).await?;
            let token =
                berth_auth::cli::create_token(&db, &user, &scopes, expires_at.as_deref(), &name)
                    .await?;
            println!("{token}");
        }
        Command::User {
            action:
                UserAction::Create {
                    username,
                    email,
                    admin,
                },
        } => {
            let password = match std::env::var("BERTH_NEW_USER_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let db = database(&cfg, &cli.common).await?;
            let id = berth_auth::cli::create_user(&db, &username, &email, &password, admin).await?;
            println!("{id}");
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

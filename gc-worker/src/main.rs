//! `berth-gc`: load configuration, start tracing, run the workers or a one-off command.

use clap::{Parser, Subcommand};

/// Berth's gc-worker.
#[derive(Parser)]
#[command(name = "berth-gc", version, about)]
struct Cli {
    #[command(flatten)]
    common: berth_server::CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the GC workers and the cleanup-policy scheduler (the default).
    Run,
    /// Report store/database inconsistencies (read-only); `--repair` fixes what is safe.
    Check(berth_gc::check::Args),
    /// Storage usage, deduplicated per repository, project and root namespace.
    Usage(berth_gc::usage::Args),
    /// Run or preview a project's cleanup policy now.
    Cleanup {
        /// The project's full path.
        #[arg(long)]
        project: String,
        /// List what would be deleted and why each tag is kept, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg: berth_gc::Config = berth_server::load_config(cli.common.config.as_deref())?;
    // One-off reports own stdout; their logs go to stderr.
    if matches!(cli.command, Some(Command::Check(_) | Command::Usage(_))) {
        berth_server::init_tracing_stderr(cfg.log_format.is_json());
    } else {
        berth_server::init_tracing(cfg.log_format.is_json());
    }
    berth_server::install_panic_hook();
    let migrate = !cli.common.no_migrate;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => berth_gc::run::run(cfg, migrate).await,
        Command::Check(args) => berth_gc::check::run(cfg, args, migrate).await,
        Command::Usage(args) => berth_gc::usage::run(cfg, args, migrate).await,
        Command::Cleanup { project, dry_run } => {
            berth_gc::cleanup::run_cli(cfg, &project, dry_run).await
        }
    }
}

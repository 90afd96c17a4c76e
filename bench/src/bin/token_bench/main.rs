//! `berth-token-bench`: how many registry tokens per second `berth-auth` issues
//! (`GET /jwt/auth` with a personal access token, 16 concurrent clients), and where the
//! time goes.
//!
//! It builds nothing; build the release binaries first, then run it:
//!
//! ```text
//! export CARGO_TARGET_DIR=/root/.cache/berth-target   # or wherever your target dir is
//! cargo build --release -p berth-auth -p berth-bench && $CARGO_TARGET_DIR/release/berth-token-bench
//! $CARGO_TARGET_DIR/release/berth-token-bench --postgres   # PostgreSQL at 127.0.0.1:5432
//! ```
//!
//! It starts `berth-auth serve` on a fresh SQLite database in a scratch directory (or, with
//! `--postgres`, a fresh PostgreSQL database it creates and drops with `psql`), sets up a
//! group, two projects, a developer and their PAT through the real CLI and API, then runs
//! these variants one after the other against the same process:
//!
//! * `login`: Basic `dev:<PAT>` without a scope, what `docker login` sends: SHA-256 of the
//!   token, one indexed lookup, the user; then an empty token is signed.
//! * `pat+scope`: the same plus `scope=repository:bench/app:pull,push`: the project by
//!   path, its namespace chain and the membership, then the ES256 signature.
//! * `anonymous`: no credentials, pull of the public `bench/pub`: grant and sign only.
//!   (Berth, like GitLab, refuses a public project in a private group, so the bench makes
//!   group `bench` public when the API says so; `bench/app` stays private.)
//! * `password`: Basic `dev:<password>` with the same scope as `pat+scope`, at a lower
//!   concurrency and for fewer seconds: argon2id dominates.
//!
//! For each it reports requests/s, latency percentiles and the CPU time the auth process
//! (and this client, and with `--postgres` the PostgreSQL backends serving the bench
//! database) spent per request, read from `/proc/<pid>/stat` at the edges of the measured
//! window, with the CPU everything else on the machine used meanwhile; plus in-process
//! costs of one ES256 signature and one SHA-256 of a token, and the auth process's peak
//! RSS. With `--postgres` it also counts the transactions each kind of request runs
//! (`pg_stat_database`, on a sequential probe after the load; it takes about a minute).
//! Client and server share the machine's cores, so the CPU figures per request say more
//! than the rate does; on a shared machine, `--rounds 3` keeps each variant's least
//! disturbed round.

mod inprocess;
mod load;
mod postgres;
mod proc_stats;
mod report;
mod server;
mod setup;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::inprocess::micro_benchmarks;
use crate::load::{Outcome, Variant, run_variant};
use crate::postgres::{PgDatabase, pg_transactions_per_request};
use crate::report::print_report;
use crate::server::Auth;
use crate::setup::{basic_header, setup};

/// Password of the bench's developer user.
const DEV_PASSWORD: &str = "dev-password-123";
/// The service name `berth-auth` issues tokens for by default.
const SERVICE: &str = "container_registry";

/// Measure token issuance (`GET /jwt/auth`) of berth-auth.
#[derive(Parser, Debug)]
#[command(name = "berth-token-bench", version, about)]
struct Cli {
    /// Concurrent clients (one keep-alive connection each) for the token variants.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured seconds per token variant.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds before each variant's measured window.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent clients for the password variant (argon2id is CPU- and memory-bound).
    #[arg(long, default_value_t = 4)]
    password_clients: usize,
    /// Measured seconds of the password variant (after a 1 s warm-up); 0 skips it.
    #[arg(long, default_value_t = 3)]
    password_seconds: u64,
    /// Run every variant this many times and report, per variant, the round with the least
    /// CPU used by other processes (for shared machines).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Use a fresh PostgreSQL database (created and dropped with psql) instead of SQLite.
    #[arg(long)]
    postgres: bool,
    /// PostgreSQL server for --postgres, without a database name.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// berth-auth binary; defaults to `$CARGO_TARGET_DIR/release/berth-auth`, else the
    /// `berth-auth` next to this binary.
    #[arg(long)]
    auth_bin: Option<PathBuf>,
    /// Directory for the scratch directory (SQLite database, auth log).
    #[arg(long, default_value = "/var/tmp")]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.clients > 0 && cli.password_clients > 0 && cli.seconds > 0 && cli.rounds > 0,
        "--clients, --password-clients, --seconds and --rounds must be positive"
    );
    let bin = resolve_bin(cli.auth_bin.clone())?;
    let work = tempfile::Builder::new()
        .prefix("berth-token-bench-")
        .tempdir_in(&cli.work_dir)
        .with_context(|| format!("creating a scratch directory in {}", cli.work_dir.display()))?;
    eprintln!("auth binary: {}", bin.display());
    eprintln!("scratch directory: {}", work.path().display());
    // On Ctrl-C, dropping the bench future kills berth-auth (kill_on_drop) and drops the
    // PostgreSQL database (its guard's Drop).
    tokio::select! {
        r = bench(&cli, &bin, work.path()) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            Ok(())
        }
    }
}

/// Micro-benchmarks, then the server and its variants, then the report.
async fn bench(cli: &Cli, bin: &Path, scratch: &Path) -> anyhow::Result<()> {
    // In-process costs first, while nothing else runs.
    let micro = micro_benchmarks()?;

    let (database_url, pg) = if cli.postgres {
        let db = PgDatabase::create(&cli.postgres_url)?;
        (db.url.clone(), Some(db))
    } else {
        (
            format!("sqlite://{}/berth.db?mode=rwc", scratch.display()),
            None,
        )
    };
    eprintln!("database: {database_url}");
    let mut auth = Auth::start(bin, &database_url, scratch).await?;
    let setup = match setup(&auth, bin, &database_url).await {
        Ok(s) => s,
        Err(e) => {
            anyhow::bail!("setting up data: {e:#}\nauth log:\n{}", auth.log_tail(30));
        }
    };

    let url = |scope: Option<&str>| {
        let mut u = format!("{}/jwt/auth?service={SERVICE}", auth.base);
        if let Some(s) = scope {
            u.push_str("&scope=");
            u.push_str(s);
        }
        u
    };
    let app_scope = "repository:bench/app:pull,push";
    let pat = basic_header("dev", &setup.pat)?;
    let password = basic_header("dev", DEV_PASSWORD)?;
    let mut variants = vec![
        Variant {
            name: "login",
            what: "Basic PAT, no scope (docker login)",
            url: url(None),
            auth: Some(pat.clone()),
            clients: cli.clients,
            warmup: Duration::from_secs(cli.warmup),
            seconds: Duration::from_secs(cli.seconds),
            probe_requests: 1000,
        },
        Variant {
            name: "pat+scope",
            what: "Basic PAT, bench/app pull,push",
            url: url(Some(app_scope)),
            auth: Some(pat),
            clients: cli.clients,
            warmup: Duration::from_secs(cli.warmup),
            seconds: Duration::from_secs(cli.seconds),
            probe_requests: 1000,
        },
        Variant {
            name: "anonymous",
            what: "no credentials, bench/pub pull",
            url: url(Some("repository:bench/pub:pull")),
            auth: None,
            clients: cli.clients,
            warmup: Duration::from_secs(cli.warmup),
            seconds: Duration::from_secs(cli.seconds),
            probe_requests: 1000,
        },
    ];
    if cli.password_seconds > 0 {
        variants.push(Variant {
            name: "password",
            what: "Basic password, bench/app pull,push",
            url: url(Some(app_scope)),
            auth: Some(password),
            clients: cli.password_clients,
            warmup: Duration::from_secs(1),
            seconds: Duration::from_secs(cli.password_seconds),
            probe_requests: 100,
        });
    }

    // Each variant's round with the least competing load on the machine. The token
    // variants take turns round by round; the password rounds come last, because argon2id
    // raises the peak RSS for good.
    let mut results: Vec<Option<Outcome>> = variants.iter().map(|_| None).collect();
    let pg_name = pg.as_ref().map(|d| d.name.as_str());
    let mut schedule: Vec<(u32, usize)> = Vec::new();
    for password in [false, true] {
        for round in 1..=cli.rounds {
            for (i, v) in variants.iter().enumerate() {
                if (v.name == "password") == password {
                    schedule.push((round, i));
                }
            }
        }
    }
    for (round, i) in schedule {
        let v = &variants[i];
        eprintln!(
            "round {round}/{}: {} ({} clients, {} s + {} s warm-up)...",
            cli.rounds,
            v.name,
            v.clients,
            v.seconds.as_secs(),
            v.warmup.as_secs()
        );
        let mut r = match run_variant(v, auth.pid()?, pg_name).await {
            Ok(r) => r,
            Err(e) => {
                anyhow::bail!("{}: {e:#}\nauth log:\n{}", v.name, auth.log_tail(30));
            }
        };
        r.peak_rss_mib = auth.peak_rss_mib().ok();
        eprintln!(
            "   {:.0} req/s, {:.0} µs CPU/req, other load {:.2} cores",
            r.rps, r.server_cpu_us, r.other_cores
        );
        let best = &mut results[i];
        if best.as_ref().is_none_or(|b| r.other_cores < b.other_cores) {
            *best = Some(r);
        }
    }
    // PostgreSQL: how many transactions (one per autocommit statement) each kind of
    // request runs, counted on a sequential probe after the measured runs.
    let txs: Vec<Option<f64>> = match &pg {
        Some(db) => {
            eprintln!("counting PostgreSQL transactions per request (about a minute)...");
            pg_transactions_per_request(&variants, db)
                .await
                .context("counting transactions")?
                .into_iter()
                .map(Some)
                .collect()
        }
        None => variants.iter().map(|_| None).collect(),
    };

    let results: Vec<Outcome> = results
        .into_iter()
        .zip(txs)
        .filter_map(|(r, tx)| r.map(|r| Outcome { pg_tx: tx, ..r }))
        .collect();
    if let Some(status) = auth.child.try_wait()? {
        anyhow::bail!("berth-auth exited ({status}); log:\n{}", auth.log_tail(30));
    }
    auth.child.kill().await?;

    print_report(cli, &database_url, &micro, &variants, &results);
    Ok(())
}

/// Resolves the berth-auth binary like `berth-bench` resolves berth-registry.
fn resolve_bin(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match flag {
        Some(p) => p,
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => PathBuf::from(dir).join("release").join("berth-auth"),
            None => std::env::current_exe()?
                .parent()
                .context("this executable has no directory")?
                .join("berth-auth"),
        },
    };
    anyhow::ensure!(
        bin.is_file(),
        "berth-auth not found at {} (build it with `cargo build --release -p berth-auth`, or \
         pass --auth-bin)",
        bin.display()
    );
    Ok(bin)
}

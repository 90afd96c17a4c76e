//! `berth-tags-bench`: how fast `berth-auth` lists the tags of a repository with 10,000 of
//! them (`GET /api/v4/projects/:id/registry/repositories/:repository_id/tags`; acceptance:
//! a page in under 50 ms).
//!
//! It builds nothing; build the release binaries first, then run it:
//!
//! ```text
//! export CARGO_TARGET_DIR=/root/.cache/berth-target
//! cargo build --release -p berth-auth -p berth-bench && $CARGO_TARGET_DIR/release/berth-tags-bench
//! $CARGO_TARGET_DIR/release/berth-tags-bench --db postgres   # PostgreSQL at 127.0.0.1:5432
//! ```
//!
//! It starts `berth-auth serve` on a fresh SQLite database in a scratch directory (or a
//! fresh PostgreSQL database it creates and drops with `psql`), creates a project through
//! the API with a root PAT from the CLI, writes one repository with the tags straight
//! through `berth_db` ([`data`]), then sends each kind of page request one after the other
//! (one keep-alive connection, after a warm-up) and prints p50/p99/max per kind, for
//! `per_page` 20 and 100: the first page by name, a middle offset page, keyset pages by
//! name and by time (following each `next` link, wrapping round at the end), the first
//! page and a middle page by push time, and a name-filtered page.

mod data;
#[expect(
    dead_code,
    reason = "shared with berth-token-bench; only part is used here"
)]
#[path = "../token_bench/proc_stats.rs"]
mod proc_stats;
#[path = "../../scratch_pg.rs"]
mod scratch_pg;
#[expect(
    dead_code,
    reason = "shared with berth-token-bench; only part is used here"
)]
#[path = "../token_bench/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use reqwest::StatusCode;
use scratch_pg::PgDatabase;
use serde_json::{Value, json};

use crate::server::{Auth, auth_command};

/// Measure tag listing of berth-auth on a repository with many tags.
#[derive(Parser, Debug)]
#[command(name = "berth-tags-bench", version, about)]
struct Cli {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// PostgreSQL server for `--db postgres`, without a database name.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// Tags in the repository.
    #[arg(long, default_value_t = 10_000)]
    tags: usize,
    /// Measured requests per kind of page.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Unmeasured requests before each kind.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// berth-auth binary; defaults to `$CARGO_TARGET_DIR/release/berth-auth`, else the
    /// `berth-auth` next to this binary.
    #[arg(long)]
    auth_bin: Option<PathBuf>,
    /// Directory for the scratch directory (SQLite database, auth log).
    #[arg(long, default_value = "/var/tmp")]
    work_dir: PathBuf,
    /// Keep the database afterwards and print its URL (to inspect query plans).
    #[arg(long)]
    keep: bool,
}

/// One kind of request: how the next URL is chosen.
enum Walk {
    /// The same URL every time.
    Fixed(String),
    /// Follow `rel="next"`; back to the start when there is none.
    Keyset(String),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.tags > 0 && cli.requests > 0,
        "--tags and --requests must be positive"
    );
    let bin = resolve_bin(cli.auth_bin.clone())?;
    let work = tempfile::Builder::new()
        .prefix("berth-tags-bench-")
        .tempdir_in(&cli.work_dir)
        .with_context(|| format!("creating a scratch directory in {}", cli.work_dir.display()))?;
    let (url, pg) = match cli.db.as_str() {
        "sqlite" => (
            format!("sqlite://{}/berth.db?mode=rwc", work.path().display()),
            None,
        ),
        "postgres" => {
            let pg = PgDatabase::create(&cli.postgres_url, "berth_tags_bench")?;
            (pg.url.clone(), Some(pg))
        }
        other => anyhow::bail!("--db is sqlite or postgres, not {other}"),
    };
    let result = tokio::select! {
        r = bench(&cli, &bin, &url, work.path()) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            Ok(())
        }
    };
    if cli.keep {
        eprintln!("kept database: {url}");
        std::mem::forget(pg);
        let _ = work.keep();
    } else {
        drop(pg);
    }
    result
}

async fn bench(cli: &Cli, bin: &Path, url: &str, scratch: &Path) -> anyhow::Result<()> {
    let auth = Auth::start(bin, url, scratch).await?;
    let token = root_token(bin, url).await?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = format!("{}/api/v4", auth.base);
    let post = |path: &str, body: Value| {
        client
            .post(format!("{api}{path}"))
            .header("private-token", &token)
            .json(&body)
            .send()
    };
    let group: Value = post(
        "/groups",
        json!({"name": "bench", "path": "bench", "visibility": "private"}),
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    let project: Value = post(
        "/projects",
        json!({"name": "app", "path": "app", "namespace_id": group["id"]}),
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    let pid = project["id"].as_i64().context("project id")?;

    let started = Instant::now();
    let repo = data::populate(url, "bench/app", cli.tags).await?;
    eprintln!(
        "{}: {} tags written in {:.1} s",
        cli.db,
        cli.tags,
        started.elapsed().as_secs_f64()
    );
    let tags = format!("{api}/projects/{pid}/registry/repositories/{repo}/tags");

    println!(
        "berth-tags-bench: {} tags, {} ({} requests per kind, sequential)",
        cli.tags, cli.db, cli.requests
    );
    println!(
        "{:<52} {:>8} {:>8} {:>8} {:>6}",
        "kind", "p50 ms", "p99 ms", "max ms", "items"
    );
    for per_page in [20usize, 100] {
        let middle = cli.tags / per_page / 2 + 1;
        let kinds = [
            (
                "first page, by name",
                Walk::Fixed(format!("{tags}?per_page={per_page}")),
            ),
            (
                "middle offset page, by name",
                Walk::Fixed(format!("{tags}?per_page={per_page}&page={middle}")),
            ),
            (
                "keyset pages (last=), by name",
                Walk::Keyset(format!("{tags}?pagination=keyset&per_page={per_page}")),
            ),
            (
                "first page, by push time desc",
                Walk::Fixed(format!(
                    "{tags}?order_by=created_at&sort=desc&per_page={per_page}"
                )),
            ),
            (
                "middle offset page, by push time",
                Walk::Fixed(format!(
                    "{tags}?order_by=created_at&per_page={per_page}&page={middle}"
                )),
            ),
            (
                "keyset pages, by push time desc",
                Walk::Keyset(format!(
                    "{tags}?order_by=created_at&sort=desc&pagination=keyset&per_page={per_page}"
                )),
            ),
            (
                "keyset pages, by last pull",
                Walk::Keyset(format!(
                    "{tags}?order_by=last_pulled_at&pagination=keyset&per_page={per_page}"
                )),
            ),
            (
                "first page, name filter 'build-01'",
                Walk::Fixed(format!("{tags}?name=build-01&per_page={per_page}")),
            ),
        ];
        for (label, walk) in kinds {
            let (mut times, items) = measure(&client, &token, &walk, cli).await?;
            times.sort_by(f64::total_cmp);
            println!(
                "{:<52} {:>8.2} {:>8.2} {:>8.2} {:>6}",
                format!("{label} (per_page {per_page})"),
                percentile(&times, 0.50),
                percentile(&times, 0.99),
                times.last().copied().unwrap_or_default(),
                items
            );
        }
    }
    Ok(())
}

/// Times `cli.requests` requests of one kind (after `cli.warmup` unmeasured ones), in ms,
/// and the items the first measured page had.
async fn measure(
    client: &reqwest::Client,
    token: &str,
    walk: &Walk,
    cli: &Cli,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let start = match walk {
        Walk::Fixed(u) | Walk::Keyset(u) => u.clone(),
    };
    let mut next = start.clone();
    let mut times = Vec::with_capacity(cli.requests);
    let mut items = None;
    for i in 0..cli.warmup + cli.requests {
        let t = Instant::now();
        let resp = client
            .get(&next)
            .header("private-token", token)
            .send()
            .await?;
        let status = resp.status();
        let link = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(status == StatusCode::OK, "{next} answered {status}");
        if i >= cli.warmup {
            times.push(ms);
            if items.is_none() {
                let v: Value = serde_json::from_slice(&body)?;
                items = Some(v.as_array().map_or(0, Vec::len));
            }
        }
        if let Walk::Keyset(_) = walk {
            next = link
                .as_deref()
                .and_then(next_link)
                .unwrap_or_else(|| start.clone());
        }
    }
    Ok((times, items.unwrap_or_default()))
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// The `q` quantile of sorted `v` (nearest rank).
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// A root PAT with `api`, from `berth-auth token create`.
async fn root_token(bin: &Path, url: &str) -> anyhow::Result<String> {
    let out = auth_command(bin, url)
        .args([
            "--no-migrate",
            "token",
            "create",
            "--user",
            "root",
            "--scopes",
            "api",
        ])
        .stdin(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

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

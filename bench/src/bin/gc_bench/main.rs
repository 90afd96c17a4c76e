//! `berth-gc-bench`: how fast the online GC collects unreferenced blobs from the local store
//! (issue 5, acceptance 6: 100,000 blobs; blobs per second and the worker's peak RSS).
//!
//! It builds nothing; build the release binaries first, then run it:
//!
//! ```text
//! export CARGO_TARGET_DIR=/root/.cache/berth-target
//! cargo build --release -p berth-gc -p berth-bench && $CARGO_TARGET_DIR/release/berth-gc-bench
//! $CARGO_TARGET_DIR/release/berth-gc-bench --db postgres   # PostgreSQL at 127.0.0.1:5432
//! $CARGO_TARGET_DIR/release/berth-gc-bench --distribution  # also CNCF Distribution's offline GC
//! ```
//!
//! It seeds `--blobs` small blobs straight through `berth_db` and the store's file layout
//! ([`seed`]: file, `blobs` row and a review row due now, as uploads nobody referenced leave
//! them), then starts the real `berth-gc run` with `BERTH_GC_REVIEW_DELAY=0s` and polls
//! until the review queue is empty and every file is gone. It prints the time from process
//! start, blobs per second, and the worker's peak RSS (VmHWM) and CPU time.
//!
//! With `--distribution` it also lays the same number of unreferenced blobs out in CNCF
//! Distribution's filesystem layout and times `docker-registry garbage-collect` (its offline
//! mark-and-sweep; Debian package `docker-registry`) over them, and prints the ratio.

#[expect(
    dead_code,
    reason = "shared with berth-token-bench; only part is used here"
)]
#[path = "../token_bench/proc_stats.rs"]
mod proc_stats;
#[path = "../../scratch_pg.rs"]
mod scratch_pg;
mod seed;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_db::entity::{blobs, gc_blob_review_queue};
use clap::Parser;
use scratch_pg::PgDatabase;
use sea_orm::{EntityTrait, PaginatorTrait};

/// Measure the online GC on many unreferenced blobs.
#[derive(Parser, Debug)]
#[command(name = "berth-gc-bench", version, about)]
struct Cli {
    /// `sqlite` or `postgres`.
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// PostgreSQL server for `--db postgres`, without a database name.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// Unreferenced blobs to collect.
    #[arg(long, default_value_t = 100_000)]
    blobs: usize,
    /// Blob workers in the gc process (`BERTH_GC_BLOB_WORKERS`).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
    /// berth-gc binary; defaults to `$CARGO_TARGET_DIR/release/berth-gc`, else the
    /// `berth-gc` next to this binary.
    #[arg(long)]
    gc_bin: Option<PathBuf>,
    /// Directory for the scratch directory (database, store, logs).
    #[arg(long, default_value = "/var/tmp")]
    work_dir: PathBuf,
    /// Also time CNCF Distribution's `docker-registry garbage-collect` on as many blobs.
    #[arg(long)]
    distribution: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let work = tempfile::Builder::new()
        .prefix("berth-gc-bench-")
        .tempdir_in(&cli.work_dir)
        .with_context(|| format!("scratch directory in {}", cli.work_dir.display()))?;
    let store = work.path().join("store");
    std::fs::create_dir_all(store.join("uploads"))?;
    let pg = if cli.db == "postgres" {
        Some(PgDatabase::create(&cli.postgres_url, "berth_gc_bench")?)
    } else {
        anyhow::ensure!(cli.db == "sqlite", "--db is sqlite or postgres");
        None
    };
    let url = pg.as_ref().map_or_else(
        || {
            format!(
                "sqlite://{}?mode=rwc",
                work.path().join("berth.db").display()
            )
        },
        |p| p.url.clone(),
    );
    let db = berth_db::connect(&url).await?;
    berth_db::migrate(&db).await?;

    let t = Instant::now();
    let seeded = seed::files(&store, cli.blobs)?;
    let files_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    seed::rows(
        &db,
        &seeded,
        chrono::Utc::now() - chrono::Duration::seconds(1),
    )
    .await?;
    println!(
        "seeded {} blobs on {}: files {files_s:.1} s, rows {:.1} s",
        cli.blobs,
        cli.db,
        t.elapsed().as_secs_f64()
    );

    let berth = collect_berth(&cli, &db, &url, &store, work.path()).await?;
    if cli.distribution {
        match distribution(cli.blobs, work.path()) {
            Ok((d, rss)) => println!(
                "distribution garbage-collect: {} blobs in {:.1} s = {:.0} blobs/s, peak RSS {:.1} MiB; \
                 Berth online GC / Distribution throughput ratio {:.2}",
                cli.blobs,
                d.as_secs_f64(),
                cli.blobs as f64 / d.as_secs_f64(),
                rss,
                (cli.blobs as f64 / berth.as_secs_f64()) / (cli.blobs as f64 / d.as_secs_f64()),
            ),
            Err(e) => println!("distribution comparison skipped: {e:#}"),
        }
    }
    db.read.clone().close().await.ok();
    drop(pg);
    Ok(())
}

/// Start `berth-gc run`, wait until the queue is empty and the files are gone; returns the
/// time from process start.
async fn collect_berth(
    cli: &Cli,
    db: &berth_db::Db,
    url: &str,
    store: &Path,
    work: &Path,
) -> anyhow::Result<Duration> {
    let bin = gc_binary(cli)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(work.join("gc.log"))?;
    let started = Instant::now();
    let mut child = std::process::Command::new(&bin)
        .arg("run")
        .env("BERTH_DATABASE_URL", url)
        .env("BERTH_STORAGE_URL", format!("file://{}", store.display()))
        .env("BERTH_GC_ADDR", format!("127.0.0.1:{port}"))
        .env("BERTH_GC_REVIEW_DELAY", "0s")
        .env("BERTH_GC_BLOB_WORKERS", cli.workers.to_string())
        .env("BERTH_GC_INTERVAL", "200ms")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    let deadline = started + Duration::from_secs(cli.timeout_secs);
    let mut last_report = Instant::now();
    let result = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!(
                "berth-gc exited early ({status}); see {}",
                work.join("gc.log").display()
            ));
        }
        let queued = gc_blob_review_queue::Entity::find().count(&db.read).await?;
        if last_report.elapsed() > Duration::from_secs(10) {
            println!(
                "  {:>5.0} s: {queued} review rows left",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        if queued == 0 && seed::count_files(store) == 0 {
            break Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!("timed out with {queued} review rows left"));
        }
    };
    let rss = proc_stats::peak_rss_mib(pid).unwrap_or(f64::NAN);
    let cpu = proc_stats::cpu_ticks(pid).unwrap_or(0) as f64
        / proc_stats::clock_ticks_per_second() as f64;
    let _ = child.kill();
    let _ = child.wait();
    let elapsed = result?;
    let rows_left = blobs::Entity::find().count(&db.read).await?;
    anyhow::ensure!(rows_left == 0, "{rows_left} blob rows left");
    println!(
        "berth-gc run ({} blob worker(s), {}): collected {} blobs in {:.1} s = {:.0} blobs/s; \
         worker peak RSS {rss:.1} MiB, CPU {cpu:.1} s",
        cli.workers,
        cli.db,
        cli.blobs,
        elapsed.as_secs_f64(),
        cli.blobs as f64 / elapsed.as_secs_f64(),
    );
    Ok(elapsed)
}

/// Lay out `n` unreferenced blobs for Distribution and time its offline collector;
/// returns its wall time and peak RSS in MiB.
fn distribution(n: usize, work: &Path) -> anyhow::Result<(Duration, f64)> {
    let root = work.join("distribution");
    let v2 = root.join("docker/registry/v2");
    std::fs::create_dir_all(v2.join("repositories"))?;
    for i in 0..n {
        let data = format!("distribution blob {i}").into_bytes();
        let digest = berth_core::Digest::sha256(&data);
        let hex = digest.hex();
        let dir = v2.join("blobs/sha256").join(&hex[..2]).join(hex);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("data"), &data)?;
    }
    let config = work.join("distribution.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
            root.display()
        ),
    )?;
    let started = Instant::now();
    let mut child = std::process::Command::new("docker-registry")
        .arg("garbage-collect")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("distribution.log"))?)
        .spawn()
        .context("running docker-registry (apt-get install docker-registry)")?;
    let mut rss = f64::NAN;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if let Ok(r) = proc_stats::peak_rss_mib(child.id()) {
            rss = r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    anyhow::ensure!(
        status.success(),
        "docker-registry garbage-collect: {status}"
    );
    let left = seed::count_files(&v2);
    anyhow::ensure!(left == 0, "Distribution left {left} blob files");
    Ok((elapsed, rss))
}

fn gc_binary(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(b) = &cli.gc_bin {
        return Ok(b.clone());
    }
    let from_target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("release/berth-gc"))
        .filter(|p| p.exists());
    let next_to_me = std::env::current_exe()?
        .parent()
        .map(|d| d.join("berth-gc"))
        .filter(|p| p.exists());
    from_target
        .or(next_to_me)
        .context("berth-gc not found; build it or pass --gc-bin")
}

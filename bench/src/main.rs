//! `berth-bench`: runs berth-registry and CNCF Distribution on the same workloads,
//! alternating them round by round, and prints each figure side by side with the ratio
//! Berth/Distribution.
//!
//! Both registries get fresh data directories every round, the same ES256 token key and
//! the same client code, so the only difference between the two columns is the server.

mod auth;
mod data;
mod load;
mod procs;
mod report;
mod workloads;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::load::LoadGen;
use crate::procs::{Kind, Launch};
use crate::workloads::{Bench, Plan};

/// Benchmark berth-registry against CNCF Distribution 2.8 on identical workloads.
#[derive(Parser, Debug)]
#[command(name = "berth-bench", version, about)]
struct Cli {
    /// How many rounds; each round runs Berth, then Distribution, on fresh storage.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Size of each big blob in MiB (two are generated: one monolithic, one chunked).
    #[arg(long, default_value_t = 1024)]
    blob_mib: u64,
    /// Chunk size in MiB for the chunked push.
    #[arg(long, default_value_t = 16)]
    chunk_mib: u64,
    /// Number of small single-layer images pushed in the concurrent-push workload.
    #[arg(long, default_value_t = 2000)]
    small_images: usize,
    /// Concurrent clients for the small-image workload (each pushes into its own repository).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Concurrent connections for the manifest HEAD/GET load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds each manifest load (HEAD, then GET) runs.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Size in MiB of the file written and fsynced to measure the disk. Keep it large: a
    /// small file mostly measures the page cache.
    #[arg(long, default_value_t = 1024)]
    disk_probe_mib: u64,
    /// Run only one registry.
    #[arg(long, value_enum)]
    only: Option<Kind>,
    /// berth-registry binary; defaults to `$CARGO_TARGET_DIR/release/berth-registry`, else
    /// the `berth-registry` next to this binary.
    #[arg(long)]
    berth_bin: Option<PathBuf>,
    /// CNCF Distribution binary.
    #[arg(long, default_value = "/usr/bin/docker-registry")]
    distribution_bin: PathBuf,
    /// Directory for the scratch directory (blob files, keys, registry storage). Use a real
    /// disk, not tmpfs, so the push figures include storage.
    #[arg(long, default_value = "/var/tmp")]
    work_dir: PathBuf,
    /// HTTP load generator for the manifest workloads.
    #[arg(long, value_enum, default_value_t = LoadGen::Auto)]
    load_gen: LoadGen,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        cli.blob_mib > 0 && cli.chunk_mib > 0 && cli.disk_probe_mib > 0,
        "--blob-mib, --chunk-mib and --disk-probe-mib must be positive"
    );
    anyhow::ensure!(
        cli.clients > 0 && cli.connections > 0,
        "--clients and --connections must be positive"
    );
    let kinds: Vec<Kind> = match cli.only {
        Some(kind) => vec![kind],
        None => vec![Kind::Berth, Kind::Distribution],
    };
    let launch = Launch::resolve(cli.berth_bin.clone(), cli.distribution_bin.clone(), &kinds)?;
    let load_gen = cli.load_gen.resolve()?;

    let work = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in(&cli.work_dir)
        .with_context(|| format!("creating a scratch directory in {}", cli.work_dir.display()))?;
    eprintln!("scratch directory: {}", work.path().display());
    // On Ctrl-C, dropping the bench future kills the running registry (kill_on_drop) and
    // returning drops `work`, so gigabytes of blobs are not left behind in /var/tmp.
    tokio::select! {
        r = bench(&cli, &kinds, &launch, load_gen, work.path()) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted; removing {}", work.path().display());
            Ok(())
        }
    }
}

/// Prepares keys, bounds and blobs in `scratch`, runs every round and prints the report.
async fn bench(
    cli: &Cli,
    kinds: &[Kind],
    launch: &Launch,
    load_gen: LoadGen,
    scratch: &Path,
) -> anyhow::Result<()> {
    let keys = auth::Keys::create(scratch).await?;
    // Bounds first, on a quiet disk; then the blobs, flushed so their writeback does not
    // slow the first registry's pushes.
    data::sync().await;
    let bounds = data::measure_bounds(scratch, cli.disk_probe_mib << 20).await?;
    let blob_bytes = cli.blob_mib << 20;
    let blobs = data::prepare_blobs(scratch, blob_bytes).await?;
    data::sync().await;

    let plan = Plan {
        blob_bytes,
        chunk_bytes: cli.chunk_mib << 20,
        small_images: cli.small_images,
        clients: cli.clients,
        connections: cli.connections,
        duration: Duration::from_secs(cli.duration_secs),
        load_gen,
    };
    let bench = Bench {
        plan: &plan,
        launch,
        keys: &keys,
        blobs: &blobs,
        scratch,
    };
    let mut results = report::Results::default();
    for round in 1..=cli.rounds {
        for &kind in kinds {
            bench.run_round(kind, round, &mut results).await;
        }
    }
    report::print(&plan, kinds, cli.rounds, &bounds, &results);
    Ok(())
}

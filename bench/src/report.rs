//! Collecting figures across rounds and printing the comparison table.

use std::collections::BTreeMap;

use crate::data::{Bounds, size_label};
use reqwest::Method;

use crate::load;
use crate::procs::Kind;
use crate::workloads::Plan;

/// Berth's peak RSS budget while pushing and pulling a 1 GiB blob, in MiB.
const RSS_LIMIT_MIB: f64 = 100.0;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Monolithic push, MB/s.
    PushMonolithic,
    /// Chunked push, MB/s.
    PushChunked,
    /// Blob pull, MB/s.
    Pull,
    /// Small images pushed per second.
    SmallImages,
    /// Manifest HEAD by tag, requests/s.
    HeadRps,
    /// Manifest HEAD by tag, p99 ms.
    HeadP99,
    /// Manifest GET by tag, requests/s.
    GetRps,
    /// Manifest GET by tag, p99 ms.
    GetP99,
    /// VmHWM after the big-blob workloads, MiB.
    RssBig,
    /// VmHWM after every workload, MiB.
    RssEnd,
}

impl Metric {
    /// Table order.
    const ALL: [Metric; 10] = [
        Metric::PushMonolithic,
        Metric::PushChunked,
        Metric::Pull,
        Metric::SmallImages,
        Metric::HeadRps,
        Metric::HeadP99,
        Metric::GetRps,
        Metric::GetP99,
        Metric::RssBig,
        Metric::RssEnd,
    ];

    /// Row label, with the sizes of this run.
    pub fn label(self, plan: &Plan) -> String {
        let blob = size_label(plan.blob_bytes);
        match self {
            Metric::PushMonolithic => format!("push {blob} monolithic (MB/s)"),
            Metric::PushChunked => {
                format!("push {blob} {} chunks (MB/s)", size_label(plan.chunk_bytes))
            }
            Metric::Pull => format!("pull {blob} (MB/s)"),
            Metric::SmallImages => format!("small images, {} clients (img/s)", plan.clients),
            Metric::HeadRps => format!("manifest HEAD by tag, c{} (req/s)", plan.connections),
            Metric::HeadP99 => "manifest HEAD p99 (ms)".into(),
            Metric::GetRps => format!("manifest GET by tag, c{} (req/s)", plan.connections),
            Metric::GetP99 => "manifest GET p99 (ms)".into(),
            Metric::RssBig => "peak RSS after big blobs (MiB)".into(),
            Metric::RssEnd => "peak RSS after all workloads (MiB)".into(),
        }
    }

    /// Whether a smaller figure is the better one.
    fn lower_is_better(self) -> bool {
        matches!(
            self,
            Metric::HeadP99 | Metric::GetP99 | Metric::RssBig | Metric::RssEnd
        )
    }

    /// Peaks report the worst round; everything else the median, which one noisy round
    /// cannot move.
    fn aggregate(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        if matches!(self, Metric::RssBig | Metric::RssEnd) {
            return values.iter().copied().reduce(f64::max);
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        Some(if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        })
    }

    /// Decimal places for this row.
    fn precision(self) -> usize {
        match self {
            Metric::HeadP99 | Metric::GetP99 => 2,
            _ => 1,
        }
    }
}

/// Figures of every round, per registry and metric, plus what failed.
#[derive(Debug, Default)]
pub struct Results {
    values: BTreeMap<(Metric, Kind), Vec<f64>>,
    failures: Vec<String>,
}

impl Results {
    /// Adds one round's figure.
    pub fn record(&mut self, kind: Kind, metric: Metric, value: f64) {
        self.values.entry((metric, kind)).or_default().push(value);
    }

    /// Notes (and prints) a failed workload.
    pub fn fail(&mut self, kind: Kind, round: u32, what: &str, err: &anyhow::Error) {
        let line = format!("round {round} {kind}: {what}: {err:#}");
        eprintln!("   FAILED {what}: {err:#}");
        self.failures.push(line);
    }

    /// Failures so far.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    fn get(&self, metric: Metric, kind: Kind) -> Option<f64> {
        self.values
            .get(&(metric, kind))
            .and_then(|v| metric.aggregate(v))
    }
}

/// Prints the context bounds, the table, the RSS acceptance check and any failures.
pub fn print(plan: &Plan, kinds: &[Kind], rounds: u32, bounds: &Bounds, results: &Results) {
    println!();
    println!("context (bounds on the push figures):");
    println!(
        "  disk write {} + fsync:  {:>8.1} MB/s",
        size_label(bounds.disk_bytes),
        bounds.disk_mbps
    );
    println!(
        "  sha256 {} in memory:    {:>8.1} MB/s (one core)",
        size_label(bounds.sha_bytes),
        bounds.sha_mbps
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("  {cores} cores shared by registry and client");
    println!(
        "  manifest load, {} s each: HEAD {}; GET {}",
        plan.duration.as_secs(),
        load::describe(plan.load_gen, &Method::HEAD, plan.connections),
        load::describe(plan.load_gen, &Method::GET, plan.connections),
    );
    if rounds > 1 {
        println!("  {rounds} rounds: median per figure, maximum for peak RSS");
    }
    println!();

    let col = |kind: Kind| kinds.contains(&kind);
    println!(
        "{:<42} {:>12} {:>14} {:>20}",
        "workload", "berth", "distribution", "ratio (berth/dist)"
    );
    for metric in Metric::ALL {
        let p = metric.precision();
        let berth = results.get(metric, Kind::Berth);
        let dist = results.get(metric, Kind::Distribution);
        let show = |v: Option<f64>, on: bool| match (v, on) {
            (Some(v), _) => format!("{v:.p$}"),
            (None, true) => "failed".into(),
            (None, false) => "-".into(),
        };
        let ratio = match (berth, dist) {
            (Some(b), Some(d)) if d > 0.0 => {
                let better = if metric.lower_is_better() {
                    b <= d
                } else {
                    b >= d
                };
                format!("{:.2}{}", b / d, if better { "" } else { " (worse)" })
            }
            _ => "-".into(),
        };
        println!(
            "{:<42} {:>12} {:>14} {:>20}",
            metric.label(plan),
            show(berth, col(Kind::Berth)),
            show(dist, col(Kind::Distribution)),
            ratio
        );
    }
    println!("(ratio > 1 is better for throughput rows; < 1 is better for p99 and RSS rows)");

    // The disk probe is one sample taken before the rounds; on a shared VM disk it swings
    // several-fold. A push faster than it says the probe was unlucky or the registry does
    // not fsync before answering (Berth fsyncs every blob before its 201; Distribution 2.8
    // never fsyncs), so print it as a caution, not a verdict.
    for kind in [Kind::Berth, Kind::Distribution] {
        let fastest = [Metric::PushMonolithic, Metric::PushChunked]
            .into_iter()
            .filter_map(|m| results.get(m, kind))
            .reduce(f64::max);
        if let Some(push) = fastest
            && push > bounds.disk_mbps
        {
            println!(
                "note: {kind} pushed at {push:.0} MB/s, above the single disk probe of \
                 {:.0} MB/s write+fsync; the probe is noisy on this disk",
                bounds.disk_mbps
            );
        }
    }

    if let Some(rss) = results.get(Metric::RssBig, Kind::Berth) {
        let verdict = if rss < RSS_LIMIT_MIB { "PASS" } else { "FAIL" };
        let note = if plan.blob_bytes == 1 << 30 {
            String::new()
        } else {
            format!(
                " (the criterion is defined for 1 GiB blobs; this run used {})",
                size_label(plan.blob_bytes)
            )
        };
        println!(
            "\nacceptance: Berth peak RSS pushing and pulling big blobs {rss:.1} MiB < \
             {RSS_LIMIT_MIB} MiB: {verdict}{note}"
        );
    }
    if !results.failures().is_empty() {
        println!("\nfailures:");
        for f in results.failures() {
            println!("  {f}");
        }
    }
}

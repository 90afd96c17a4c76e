//! `berth-gc check` (the offline check): compares the blob store with the database and
//! looks at the review queues' health; read-only unless `--repair`.
//!
//! What it finds, and what `--repair` does about it:
//!
//! | finding | repair |
//! |---|---|
//! | orphan file: committed bytes with no `blobs` row, older than `--grace` | delete the bytes |
//! | missing bytes of an unreferenced blob row | delete the row (links cascade, review row too) |
//! | missing bytes of a referenced blob row | nothing: data loss; the images are listed |
//! | unqueued blob: unreferenced, no review row | enqueue it for review |
//! | unqueued manifest: untagged, unreferenced, no review row | enqueue it for review |
//! | overdue review rows, rows failing `--failing-reviews` times | nothing: the workers' job |
//! | stale upload: session row or file untouched for `--upload-age` | delete row and file |
//!
//! The grace period exists because the registry commits an upload's bytes before it inserts
//! the blob's row: a young file without a row may be an upload finishing right now. The
//! store reports a blob's mtime ([`berth_blobstore::BlobStore::modified`]), which a commit
//! (a rename) carries over from the upload's last write, so it is never later than the
//! commit; the default of 1 h covers the re-hash of any realistic blob between last write and
//! commit.
//!
//! Exit status: non-zero while any problem remains (found and, with `--repair`, not fixed).
//! Tables are walked in keyset pages; the store listing is held in memory (one short string
//! per blob), sorted, to answer "are the bytes there?" without a `stat` per row.

mod queues;
mod store;
mod uploads;

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

/// Rows per database page.
const PAGE: u64 = 1000;
/// How many example rows a queue finding lists.
const SAMPLE: u64 = 10;

/// `berth-gc check` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Fix what is safe to fix.
    #[arg(long)]
    pub repair: bool,
    /// Print the report as JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Files younger than this are not orphans yet (an upload may be committing).
    #[arg(long, default_value = "1h")]
    pub grace: String,
    /// Upload sessions untouched this long are stale.
    #[arg(long, default_value = "7d")]
    pub upload_age: String,
    /// Review rows due longer ago than this are overdue.
    #[arg(long, default_value = "1h")]
    pub overdue: String,
    /// Review rows postponed at least this many times are failing.
    #[arg(long, default_value_t = 5)]
    pub failing_reviews: i32,
}

/// Everything the check found (and, with `--repair`, did).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Committed bytes without a blob row, older than the grace period.
    pub orphan_files: Vec<Finding>,
    /// Files without a row that are younger than the grace period (not problems).
    pub young_unrecorded_files: u64,
    /// Blob rows whose bytes are absent.
    pub missing_bytes: Vec<MissingBytes>,
    /// Unreferenced blobs with no review row.
    pub unqueued_blobs: Vec<Finding>,
    /// Dangling manifests with no review row.
    pub unqueued_manifests: Vec<Finding>,
    /// Review rows overdue or failing repeatedly (reported only).
    pub queues: Vec<QueueFinding>,
    /// Upload sessions (rows and/or files) untouched for too long.
    pub stale_uploads: Vec<Finding>,
}

/// One thing found, and whether `--repair` fixed it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The blob digest, `<repository>@<digest>` of a manifest, or an upload id.
    pub subject: String,
    /// Details for people.
    pub detail: String,
    /// Whether it was repaired.
    pub repaired: bool,
}

/// A blob row whose bytes are gone.
#[derive(Debug, Clone, Serialize)]
pub struct MissingBytes {
    /// The blob.
    pub digest: String,
    /// Its recorded size.
    pub size: i64,
    /// The manifests (and indexes, and their tags) that need it; empty if unreferenced.
    pub users: Vec<User>,
    /// Whether the row was deleted (only ever for unreferenced blobs).
    pub repaired: bool,
}

/// A manifest that needs a missing blob.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Repository name.
    pub repository: String,
    /// Manifest digest.
    pub manifest: String,
    /// A tag on it, if tagged.
    pub tag: Option<String>,
}

/// Review rows needing attention in one queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueFinding {
    /// `blob` or `manifest`.
    pub queue: &'static str,
    /// `overdue` or `failing`.
    pub kind: &'static str,
    /// How many rows.
    pub count: u64,
    /// The first few: key, due time (RFC 3339), review count.
    pub sample: Vec<(String, String, i32)>,
}

impl Report {
    /// Number of problems found.
    pub fn problems(&self) -> usize {
        self.orphan_files.len()
            + self.missing_bytes.len()
            + self.unqueued_blobs.len()
            + self.unqueued_manifests.len()
            + self.stale_uploads.len()
            + self.queues.len()
    }

    /// Number of problems still there (found and not repaired).
    pub fn remaining(&self) -> usize {
        let open = |v: &[Finding]| v.iter().filter(|f| !f.repaired).count();
        open(&self.orphan_files)
            + self.missing_bytes.iter().filter(|m| !m.repaired).count()
            + open(&self.unqueued_blobs)
            + open(&self.unqueued_manifests)
            + open(&self.stale_uploads)
            + self.queues.len()
    }
}

/// Resolved settings of one run.
pub(crate) struct Settings {
    pub repair: bool,
    pub grace: Duration,
    pub upload_age: Duration,
    pub overdue: Duration,
    pub failing_reviews: i32,
    pub review_delay: Duration,
}

/// Run the check against the configured database and store, print the report, and fail
/// (non-zero exit) while problems remain.
pub async fn run(cfg: crate::Config, args: Args, migrate: bool) -> anyhow::Result<()> {
    let parse = |name: &str, v: &str| {
        berth_server::parse_duration(v).with_context(|| format!("--{name} {v:?}"))
    };
    let settings = Settings {
        repair: args.repair,
        grace: parse("grace", &args.grace)?,
        upload_age: parse("upload-age", &args.upload_age)?,
        overdue: parse("overdue", &args.overdue)?,
        failing_reviews: args.failing_reviews,
        review_delay: cfg.gc_review_delay,
    };
    let db = berth_db::connect(cfg.database_url.expose_secret())
        .await
        .context("connecting to the database")?;
    if migrate {
        // Every Berth binary applies pending migrations at start; a brand-new database then
        // checks as empty.
        berth_db::migrate(&db)
            .await
            .context("applying migrations")?;
    }
    let store = berth_blobstore::open_store(&cfg.storage_url)
        .await
        .context("opening the blob store")?;
    let report = check(&db, store.as_ref(), &settings).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, settings.repair));
    }
    let remaining = report.remaining();
    if remaining > 0 {
        anyhow::bail!("{remaining} problem(s) remain");
    }
    Ok(())
}

/// Every section of the check, in order: store against rows (listing the store first, so
/// a blob committed during the walk is seen as a row, never as missing bytes), queues,
/// uploads.
pub(crate) async fn check(
    db: &berth_db::Db,
    store: &dyn berth_blobstore::BlobStore,
    s: &Settings,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    store::check(db, store, s, &mut report).await?;
    queues::check(db, s, &mut report).await?;
    uploads::check(db, store, s, &mut report).await?;
    Ok(report)
}

/// The report as lines for people, ending with a summary.
pub fn render(r: &Report, repair: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mark = |repaired: bool| {
        if repaired {
            " [repaired]"
        } else if repair {
            " [NOT repaired]"
        } else {
            ""
        }
    };
    for f in &r.orphan_files {
        let _ = writeln!(
            out,
            "orphan file {}: {}{}",
            f.subject,
            f.detail,
            mark(f.repaired)
        );
    }
    for m in &r.missing_bytes {
        if m.users.is_empty() {
            let _ = writeln!(
                out,
                "missing bytes {} ({} bytes): row unreferenced{}",
                m.digest,
                m.size,
                mark(m.repaired)
            );
            continue;
        }
        let _ = writeln!(
            out,
            "DATA LOSS: missing bytes {} ({} bytes) needed by {} manifest(s); cannot be repaired, \
             re-push the affected images:",
            m.digest,
            m.size,
            m.users.len()
        );
        for u in &m.users {
            let tag = u
                .tag
                .as_deref()
                .map(|t| format!(":{t}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {}{tag} (manifest {})", u.repository, u.manifest);
        }
    }
    for f in &r.unqueued_blobs {
        let _ = writeln!(
            out,
            "unqueued blob {}: {}{}",
            f.subject,
            f.detail,
            mark(f.repaired)
        );
    }
    for f in &r.unqueued_manifests {
        let _ = writeln!(
            out,
            "unqueued manifest {}: {}{}",
            f.subject,
            f.detail,
            mark(f.repaired)
        );
    }
    for q in &r.queues {
        let _ = writeln!(out, "{} {} review row(s): {}", q.count, q.kind, q.queue);
        for (key, due, n) in &q.sample {
            let _ = writeln!(out, "  {key} due {due}, reviewed {n} time(s)");
        }
    }
    for f in &r.stale_uploads {
        let _ = writeln!(
            out,
            "stale upload {}: {}{}",
            f.subject,
            f.detail,
            mark(f.repaired)
        );
    }
    let missing_referenced = r
        .missing_bytes
        .iter()
        .filter(|m| !m.users.is_empty())
        .count();
    let _ = writeln!(
        out,
        "summary: {} problem(s), {} remain; orphan files {}, missing bytes {} ({} referenced), \
         unqueued blobs {}, unqueued manifests {}, queue findings {}, stale uploads {}; \
         {} unrecorded file(s) within the grace period",
        r.problems(),
        r.remaining(),
        r.orphan_files.len(),
        r.missing_bytes.len(),
        missing_referenced,
        r.unqueued_blobs.len(),
        r.unqueued_manifests.len(),
        r.queues.len(),
        r.stale_uploads.len(),
        r.young_unrecorded_files,
    );
    out
}

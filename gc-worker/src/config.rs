//! berth-gc's configuration: `BERTH_*` environment variables or a TOML file, with the same
//! names the registry and auth use for what they share (database, store, review delay).

use serde::Deserialize;

/// Settings of the gc-worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`, the database the registry and auth use.
    pub database_url: String,
    /// The blob store the registry writes (`file://…` or `s3://…`).
    pub storage_url: String,
    /// Where the health and `/metrics` endpoints listen.
    pub gc_addr: String,
    /// How long something newly unreferenced waits before review (`BERTH_GC_REVIEW_DELAY`).
    pub gc_review_delay: String,
    /// `text` or `json`.
    pub log_format: String,
    /// How often an idle GC worker looks for due reviews (`BERTH_GC_INTERVAL`); idle
    /// workers back off exponentially from here.
    pub gc_interval: String,
    /// Longest idle back-off between looks (`BERTH_GC_MAX_BACKOFF`).
    pub gc_max_backoff: String,
    /// Blob-queue workers in this process (`BERTH_GC_BLOB_WORKERS`; 0 disables them).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub gc_blob_workers: usize,
    /// Manifest-queue workers in this process (`BERTH_GC_MANIFEST_WORKERS`; 0 disables them).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub gc_manifest_workers: usize,
    /// Longest a store delete may take while its review row is held (`BERTH_GC_STORAGE_TIMEOUT`).
    pub gc_storage_timeout: String,
    /// How often the queue-depth gauges are refreshed (`BERTH_GC_QUEUE_METRICS_INTERVAL`).
    pub gc_queue_metrics_interval: String,
    /// When the cleanup-policy scheduler ticks: a cron expression with seconds
    /// (`sec min hour day month weekday`); default every minute. Each tick schedules due
    /// policies and runs one slice of every waiting repository (`BERTH_CLEANUP_SCHEDULE`).
    pub cleanup_schedule: String,
    /// Safety cap: at most this many tags deleted per repository per run slice; a run with
    /// more to do is left `cleanup_unfinished` and resumed next tick
    /// (`BERTH_CLEANUP_MAX_TAGS_PER_RUN`; GitLab: 200).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub cleanup_max_tags_per_run: u64,
    /// Tags deleted per transaction (`BERTH_CLEANUP_BATCH_SIZE`).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub cleanup_batch_size: u64,
    /// Background-job workers in this process (`BERTH_JOB_WORKERS`; 0 disables them). Any
    /// number of processes share the jobs table.
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub job_workers: usize,
    /// How often an idle job worker looks for due jobs (`BERTH_JOB_POLL_INTERVAL`).
    pub job_poll_interval: String,
    /// How long a worker holds a job between batches (`BERTH_JOB_LEASE`): a job whose
    /// worker died is taken over by another after this long.
    pub job_lease: String,
    /// Tags (or manifests; five times as many blob links) a job deletes per transaction
    /// (`BERTH_JOB_BATCH_SIZE`).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub job_batch_size: u64,
    /// Attempts before a job that keeps failing is marked failed (`BERTH_JOB_MAX_ATTEMPTS`).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub job_max_attempts: i32,
    /// Test knob: shift the clock cleanup policies are judged by (`BERTH_CLOCK_OFFSET`,
    /// `10d`, `-1h`).
    pub clock_offset: String,
    /// Test knob: a file holding such an offset, re-read at every use, so a test can move
    /// time while the worker runs (`BERTH_CLOCK_OFFSET_FILE`). Unset in production.
    pub clock_offset_file: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/berth.db?mode=rwc".into(),
            storage_url: "file://data/blobs".into(),
            gc_addr: "127.0.0.1:5001".into(),
            gc_review_delay: "24h".into(),
            log_format: "text".into(),
            gc_interval: "5s".into(),
            gc_max_backoff: "1m".into(),
            gc_blob_workers: 1,
            gc_manifest_workers: 1,
            gc_storage_timeout: "5s".into(),
            gc_queue_metrics_interval: "15s".into(),
            cleanup_schedule: "0 * * * * *".into(),
            cleanup_max_tags_per_run: 1000,
            cleanup_batch_size: 100,
            job_workers: 1,
            job_poll_interval: "2s".into(),
            job_lease: "30s".into(),
            job_batch_size: 100,
            job_max_attempts: 5,
            clock_offset: String::new(),
            clock_offset_file: String::new(),
        }
    }
}

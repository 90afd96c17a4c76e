//! berth-gc's configuration: `BERTH_*` environment variables or a TOML file, with the same
//! names the registry and auth use for what they share (database, store, review delay).

use std::time::Duration;

use berth_server::{DatabaseUrl, LogFormat};
use serde::Deserialize;

/// Settings of the gc-worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`, the database the registry and auth use (its password
    /// never shows in `Debug` or logs).
    pub database_url: DatabaseUrl,
    /// The blob store the registry writes (`file://…` or `s3://…`).
    pub storage_url: String,
    /// Where the health and `/metrics` endpoints listen.
    pub gc_addr: String,
    /// How long something newly unreferenced waits before review (`BERTH_GC_REVIEW_DELAY`).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub gc_review_delay: Duration,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Connection bounds (`http_header_timeout`, `http_body_timeout`, `http_idle_timeout`,
    /// `http_max_connections`).
    #[serde(flatten)]
    pub http: berth_server::HttpSettings,
    /// How often an idle GC worker looks for due reviews (`BERTH_GC_INTERVAL`); idle
    /// workers back off exponentially from here.
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub gc_interval: Duration,
    /// Longest idle back-off between looks (`BERTH_GC_MAX_BACKOFF`).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub gc_max_backoff: Duration,
    /// Blob-queue workers in this process (`BERTH_GC_BLOB_WORKERS`; 0 disables them).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub gc_blob_workers: usize,
    /// Manifest-queue workers in this process (`BERTH_GC_MANIFEST_WORKERS`; 0 disables them).
    #[serde(deserialize_with = "berth_server::de::flexible")]
    pub gc_manifest_workers: usize,
    /// Longest a store delete may take while its review row is held (`BERTH_GC_STORAGE_TIMEOUT`).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub gc_storage_timeout: Duration,
    /// How often the queue-depth gauges are refreshed (`BERTH_GC_QUEUE_METRICS_INTERVAL`).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub gc_queue_metrics_interval: Duration,
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
    /// Upload sessions untouched this long are ended, their bytes deleted
    /// (`BERTH_UPLOAD_EXPIRY`, default 24 h; `0s` turns expiry off).
    #[serde(deserialize_with = "berth_server::values::duration")]
    pub upload_expiry: Duration,
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
            gc_review_delay: Duration::from_secs(24 * 3600),
            log_format: LogFormat::Text,
            http: Default::default(),
            gc_interval: Duration::from_secs(5),
            gc_max_backoff: Duration::from_secs(60),
            gc_blob_workers: 1,
            gc_manifest_workers: 1,
            gc_storage_timeout: Duration::from_secs(5),
            gc_queue_metrics_interval: Duration::from_secs(15),
            cleanup_schedule: "0 * * * * *".into(),
            cleanup_max_tags_per_run: 1000,
            cleanup_batch_size: 100,
            upload_expiry: Duration::from_secs(24 * 3600),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_database_password() {
        let cfg = Config {
            database_url: "postgres://berth:db-Secret-42@db.internal/berth".into(),
            ..Config::default()
        };
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains("db-Secret-42"), "{shown}");
        assert!(
            shown.contains("postgres://berth:***@db.internal/berth"),
            "{shown}"
        );
    }
}

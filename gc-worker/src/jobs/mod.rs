//! The background-job worker: claims one due job of the `jobs` table and runs it
//! ([`Runner::run_once`]); berth-auth only enqueues. Any number of berth-gc processes (and
//! workers in each) share the table: a claim is `FOR UPDATE SKIP LOCKED` on PostgreSQL and
//! the write lock on SQLite ([`berth_db::background_jobs::claim`]).
//!
//! - **Batches under a lease.** A job runs in transactions of at most `job_batch_size` tags
//!   (or manifests; five times as many blob links). Each batch first renews the lease on the
//!   job row (fencing: a worker that lost the job rolls back), and records its progress in
//!   the same transaction, so what a batch deleted and the count it adds commit together.
//! - **Idempotent, resumable.** A worker killed mid-run leaves the job `running` with a
//!   lease that runs out; the next claim, in any process, runs it again from the database's
//!   state: re-running deletes only what is still there. A bulk delete judges the tags *as
//!   of the request* (see [`delete_tags`]), so a resumed run selects the same tags.
//! - **Failures.** A refusal the job cannot get past (an immutable tag in a repository to
//!   delete) fails it at once with the reason. An error (the database went away) ends the
//!   attempt: the job is queued again after [`berth_core::jobs::retry_delay`], and fails
//!   after `job_max_attempts` attempts. An attempt that only lost a race to a concurrent
//!   write (deadlock, serialization failure) is handed back at once without counting.
//! - **GC.** Tags go through [`berth_db::tags::delete_and_queue`], manifests through
//!   [`berth_db::manifests::delete_and_queue`], blob links are queued (`blob_unlink`):
//!   blobs are never deleted here; the GC workers delete what nothing references after the
//!   review delay, so layers other repositories share stay pullable.

mod delete_repository;
mod delete_tags;

use std::time::{Duration, Instant};

use berth_core::immutability::TagPatterns;
use berth_core::jobs::{JobKind, JobPayload, RepositoryTarget, retry_delay};
use berth_db::Db;
use berth_db::background_jobs::{self as q, JobRow};
use berth_db::entity::jobs::Model as Job;
use berth_db::sea_orm::{ConnectionTrait, DatabaseTransaction};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// What a job runner needs besides the database.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a claim lasts without a batch renewing it (`BERTH_JOB_LEASE`).
    pub lease: Duration,
    /// Tags (or manifests) per transaction (`BERTH_JOB_BATCH_SIZE`).
    pub batch: u64,
    /// Attempts before a job fails for good (`BERTH_JOB_MAX_ATTEMPTS`).
    pub max_attempts: i32,
    /// `BERTH_GC_REVIEW_DELAY`: review time of what a deletion queues.
    pub review_delay: Duration,
}

/// What one [`Runner::run_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No job was due.
    Empty,
    /// The job finished.
    Succeeded,
    /// The job failed for good, for this reason.
    Failed(String),
    /// The attempt failed; the job is queued again.
    Retrying,
    /// Another worker took the job over (this one stalled past its lease).
    Lost,
    /// Asked to stop between batches; the job was handed back.
    Stopped,
}

impl Outcome {
    /// `result` label of `berth_jobs_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Empty => "empty",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed(_) => "failed",
            Outcome::Retrying => "retrying",
            Outcome::Lost => "lost",
            Outcome::Stopped => "stopped",
        }
    }
}

impl crate::worker::agent::Work for Outcome {
    fn found(&self) -> bool {
        *self != Outcome::Empty
    }
}

/// How a job's body ended (before it is recorded).
pub(crate) enum End {
    /// Done; `recorded` when the body already marked the job succeeded in its last batch.
    Done { recorded: bool },
    /// Refused for good with this message.
    Refused(String),
    /// Another worker holds the job now.
    Lost,
    /// Asked to stop between batches.
    Stopped,
}

/// One worker on the jobs table.
pub struct Runner {
    db: Db,
    owner: String,
    settings: Settings,
}

/// A claimed job being run: where each batch begins (fenced by the lease) and ends.
pub(crate) struct Held<'a> {
    runner: &'a Runner,
    job: &'a Job,
    stop: &'a watch::Receiver<bool>,
}

impl Held<'_> {
    /// Begin a batch: a write transaction that first renews the lease. `None` when this
    /// worker no longer holds the job (the transaction is rolled back).
    pub(crate) async fn begin(&self) -> anyhow::Result<Option<DatabaseTransaction>> {
        let txn = self.runner.db.begin_write().await?;
        if q::renew(&txn, self.job.id, &self.runner.owner, 0, self.lease_until()).await? {
            Ok(Some(txn))
        } else {
            txn.rollback().await?;
            Ok(None)
        }
    }

    /// End a batch that deleted `done` items: add them to the job's progress and commit.
    pub(crate) async fn commit(&self, txn: DatabaseTransaction, done: u64) -> anyhow::Result<()> {
        if done > 0 {
            q::renew(
                &txn,
                self.job.id,
                &self.runner.owner,
                done,
                self.lease_until(),
            )
            .await?;
        }
        txn.commit().await?;
        metrics::counter!("berth_job_items_deleted_total", "kind" => self.job.kind.clone())
            .increment(done);
        Ok(())
    }

    /// Inside a batch's transaction: renew the lease, adding `done` items to the job's
    /// progress. `false`: this worker no longer holds the job.
    pub(crate) async fn renew_in(
        &self,
        txn: &DatabaseTransaction,
        done: u64,
    ) -> Result<bool, berth_db::sea_orm::DbErr> {
        q::renew(
            txn,
            self.job.id,
            &self.runner.owner,
            done,
            self.lease_until(),
        )
        .await
    }

    /// Count `done` items a committed batch deleted.
    pub(crate) fn count(&self, done: u64) {
        metrics::counter!("berth_job_items_deleted_total", "kind" => self.job.kind.clone())
            .increment(done);
    }

    /// Mark the job succeeded inside the batch `txn` (its last). `false`: lost.
    pub(crate) async fn succeed_in(&self, txn: &DatabaseTransaction) -> anyhow::Result<bool> {
        Ok(q::finish(txn, self.job.id, &self.runner.owner, None, Utc::now()).await?)
    }

    /// Was the worker asked to stop?
    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// The batch size.
    pub(crate) fn batch(&self) -> u64 {
        self.runner.settings.batch
    }

    /// The database.
    pub(crate) fn db(&self) -> &Db {
        &self.runner.db
    }

    /// When something a batch queues for GC review now becomes due.
    pub(crate) fn review_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.runner.settings.review_delay)
            .unwrap_or(chrono::Duration::days(1))
    }

    fn lease_until(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(self.runner.settings.lease)
                .unwrap_or(chrono::Duration::seconds(30))
    }
}

impl Runner {
    /// A worker on `db`. Its lease owner names the process (`gc-<pid>-<random>`), so an
    /// operator (or a test) can tell which berth-gc holds a job.
    pub fn new(db: Db, settings: Settings) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Runner {
            db,
            owner: format!("gc-{}-{}", std::process::id(), &id[..8]),
            settings: Settings {
                batch: settings.batch.max(1),
                max_attempts: settings.max_attempts.max(1),
                ..settings
            },
        }
    }

    /// This worker's lease owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claim the oldest due job and run it to its end, a shutdown (`stop` turning true,
    /// checked between batches) or the loss of its lease; record how it ended.
    pub async fn run_once(&self, stop: &watch::Receiver<bool>) -> anyhow::Result<Outcome> {
        let now = Utc::now();
        if !q::any_due(&self.db.read, now).await? {
            return Ok(Outcome::Empty);
        }
        let claimed = {
            let lease_until = now
                + chrono::Duration::from_std(self.settings.lease)
                    .unwrap_or(chrono::Duration::seconds(30));
            let txn = self.db.begin_write().await?;
            let job = q::claim(&txn, &self.owner, lease_until, now).await?;
            txn.commit().await?;
            job
        };
        let Some(job) = claimed else {
            return Ok(Outcome::Empty);
        };
        let span = tracing::info_span!(
            "job",
            job.id = job.id,
            job.kind = %job.kind,
            job.attempt = job.attempts,
            job.owner = %self.owner,
            repository.id = job.repository_id,
        );
        let started = Instant::now();
        span.in_scope(|| tracing::info!("running job"));
        let held = Held {
            runner: self,
            job: &job,
            stop,
        };
        let body = if job.attempts > self.settings.max_attempts {
            // Its workers kept dying mid-run (each claim counts an attempt).
            Ok(End::Refused(format!(
                "gave up after {} attempts: {}",
                job.attempts - 1,
                job.last_error.as_deref().unwrap_or("its worker stopped")
            )))
        } else {
            run_body(&held).await
        };
        let outcome = self.settle(&job, body).await?;
        metrics::counter!("berth_jobs_total", "kind" => job.kind.clone(), "result" => outcome.label())
            .increment(1);
        metrics::histogram!("berth_job_run_duration_seconds", "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());
        span.in_scope(|| {
            let progress = job.progress;
            match &outcome {
                Outcome::Failed(reason) => {
                    tracing::warn!(job.result = outcome.label(), reason = %reason, duration_ms = started.elapsed().as_secs_f64() * 1000.0, "job failed");
                }
                _ => {
                    tracing::info!(job.result = outcome.label(), progress_before = progress, duration_ms = started.elapsed().as_secs_f64() * 1000.0, "job attempt ended");
                }
            }
        });
        Ok(outcome)
    }

    /// Record how the body ended.
    async fn settle(&self, job: &Job, body: anyhow::Result<End>) -> anyhow::Result<Outcome> {
        let now = Utc::now();
        let c = &self.db.write;
        match body {
            Ok(End::Done { recorded }) => {
                if !recorded && !q::finish(c, job.id, &self.owner, None, now).await? {
                    return Ok(Outcome::Lost);
                }
                Ok(Outcome::Succeeded)
            }
            Ok(End::Refused(reason)) => {
                if !q::finish(c, job.id, &self.owner, Some(&reason), now).await? {
                    return Ok(Outcome::Lost);
                }
                Ok(Outcome::Failed(reason))
            }
            Ok(End::Lost) => Ok(Outcome::Lost),
            Ok(End::Stopped) => {
                q::release(c, job.id, &self.owner, now).await?;
                Ok(Outcome::Stopped)
            }
            Err(e) => {
                let message = format!("{e:#}");
                if crate::worker::lost_race(&e) {
                    tracing::info!(job.id = job.id, error = %message, "job lost a race; handed back");
                    q::release(c, job.id, &self.owner, now).await?;
                    return Ok(Outcome::Retrying);
                }
                if job.attempts >= self.settings.max_attempts {
                    let reason = format!("gave up after {} attempts: {message}", job.attempts);
                    q::finish(c, job.id, &self.owner, Some(&reason), now).await?;
                    return Ok(Outcome::Failed(reason));
                }
                let wait = chrono::Duration::from_std(retry_delay(job.attempts))
                    .unwrap_or(chrono::Duration::minutes(10));
                tracing::warn!(job.id = job.id, error = %message, retry_in_s = wait.num_seconds(), "job attempt failed; will retry");
                q::retry_later(c, job.id, &self.owner, &message, now + wait, now).await?;
                Ok(Outcome::Retrying)
            }
        }
    }
}

/// Parse the job and run its kind's body.
async fn run_body(held: &Held<'_>) -> anyhow::Result<End> {
    let job = held.job;
    let Some(kind) = job.job_kind() else {
        return Ok(End::Refused(format!("unknown job kind {}", job.kind)));
    };
    let payload = match JobPayload::parse(kind, &job.payload) {
        Ok(p) => p,
        Err(e) => return Ok(End::Refused(format!("unreadable {kind} payload: {e}"))),
    };
    match (kind, payload) {
        (JobKind::DeleteRepository, JobPayload::DeleteRepository(target)) => {
            delete_repository::run(held, &target).await
        }
        (JobKind::DeleteTags, JobPayload::DeleteTags { target, rules }) => {
            delete_tags::run(held, &target, &rules).await
        }
        (kind, _) => Ok(End::Refused(format!("payload does not match kind {kind}"))),
    }
}

/// The immutable tag rules of the target's project, read on `c` (inside a batch's
/// transaction, so a rule added meanwhile is honoured). None when the project is gone.
pub(crate) async fn immutable(
    c: &impl ConnectionTrait,
    target: &RepositoryTarget,
) -> anyhow::Result<TagPatterns> {
    let Some(project_id) = target.project_id else {
        return Ok(TagPatterns::compile(&[]).0);
    };
    let patterns = berth_db::tag_rules::patterns(c, project_id).await?;
    let (rules, invalid) = TagPatterns::compile(&patterns);
    if !invalid.is_empty() {
        tracing::warn!(project.id = project_id, patterns = ?invalid, "invalid immutable tag patterns ignored");
    }
    Ok(rules)
}

/// Refresh `berth_jobs{state}` (queued and running jobs).
pub async fn refresh_gauges(db: &Db) {
    match q::depths(&db.read).await {
        Ok((queued, running)) => {
            metrics::gauge!("berth_jobs", "state" => "queued").set(queued as f64);
            metrics::gauge!("berth_jobs", "state" => "running").set(running as f64);
        }
        Err(e) => tracing::warn!(error = %e, "counting jobs failed"),
    }
}

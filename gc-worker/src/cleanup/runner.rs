//! One worker's cleanup runs: schedule due policies ([`Cleaner::schedule_due`]), then claim
//! a repository and run one slice of its policy ([`Cleaner::run_once`]).
//!
//! A slice judges the tags as of the run's start ([`berth_db::cleanup_plan`]), deletes the
//! doomed ones in transactions of `cleanup_batch_size` tags through the content library's
//! [`berth_content::Content::delete_tags`] (the manifest goes to GC review, never deleted
//! here), re-checking inside each transaction that the tag still exists, was not re-pushed
//! after the run started and is not immutable, and renewing the lease in the same
//! transaction (a worker that lost its lease rolls the batch back). At most
//! `cleanup_max_tags_per_run` tags go per slice; a slice cut short by the cap, a shutdown
//! or a lost lease leaves `cleanup_unfinished`, resumed by a later tick.

use std::time::{Duration, Instant};

use berth_content::{BatchGuard, Content, Immutable, TagBatch};
use berth_core::cleanup_policy::{Policy, next_run_at};
use berth_db::Db;
use berth_db::cleanup_plan;
use berth_db::entity::container_repository_cleanups::Model as CleanupState;
use berth_db::repository_cleanups as q;
use berth_db::sea_orm::EntityTrait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::clock::Clock;

/// How long a claim lasts without a batch renewing it.
const LEASE: Duration = Duration::from_secs(60);

/// How a slice ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceReport {
    /// The repository.
    pub repository_id: i64,
    /// Its path (empty if it vanished).
    pub repository: String,
    /// Tags this slice deleted.
    pub deleted: u64,
    /// Whether the run is complete (`cleanup_unscheduled`) or left `cleanup_unfinished`.
    pub complete: bool,
    /// Taken just after the claim committed.
    pub claimed: Instant,
    /// Taken just before the slice's end was written (the repository is still held).
    pub released: Instant,
}

/// A worker running cleanup policies.
pub struct Cleaner {
    db: Db,
    clock: Clock,
    owner: String,
    cap: u64,
    batch: u64,
    content: Content,
}

impl Cleaner {
    /// A worker on `db` with `cfg`'s cap, batch size, review delay and clock.
    pub fn new(db: Db, cfg: &crate::Config) -> anyhow::Result<Self> {
        Ok(Cleaner {
            content: Content::new(
                db.clone(),
                berth_db::settings::ReviewDelay::fixed(cfg.gc_review_delay),
            ),
            db,
            clock: Clock::from_config(cfg)?,
            owner: format!("cleanup-{}", uuid::Uuid::new_v4()),
            cap: cfg.cleanup_max_tags_per_run.max(1),
            batch: cfg.cleanup_batch_size.max(1),
        })
    }

    /// Use `clock` instead of the configured one (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock policies are judged by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn lease_until(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(60))
    }

    /// Schedule every enabled policy whose `next_run_at` has passed: in one transaction per
    /// policy, move `next_run_at` to now + cadence (GitLab sets it when the run is
    /// scheduled) and mark the project's repositories `cleanup_scheduled` with the run's
    /// start. Returns how many repositories were scheduled.
    pub async fn schedule_due(&self) -> anyhow::Result<u64> {
        let now = self.clock.now();
        let mut scheduled = 0;
        for p in q::due_policies(&self.db.read, now, 100).await? {
            let Some(from) = p.next_run_at else { continue };
            let txn = self.db.begin_write().await?;
            if !q::advance_policy(&txn, p.project_id, from, next_run_at(&p.cadence, now)).await? {
                txn.rollback().await?;
                continue;
            }
            let Some(project) = berth_db::entity::projects::Entity::find_by_id(p.project_id)
                .one(&txn)
                .await?
            else {
                txn.rollback().await?;
                continue;
            };
            let ids = self.repository_ids(&txn, &project).await?;
            // The run judges as of its due time, which is what the preview showed.
            let n = q::schedule(&txn, &ids, from, Utc::now()).await?;
            txn.commit().await?;
            tracing::info!(
                project.id = p.project_id,
                project.path = %project.full_path,
                repositories = n,
                "cleanup policy scheduled"
            );
            scheduled += n;
        }
        Ok(scheduled)
    }

    async fn repository_ids(
        &self,
        c: &impl berth_db::sea_orm::ConnectionTrait,
        project: &berth_db::entity::projects::Model,
    ) -> anyhow::Result<Vec<i64>> {
        Ok(q::project_repositories(c, project)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    /// Mark every repository of `project` `cleanup_scheduled` as of now, without touching
    /// the policy's schedule (`berth-gc cleanup` without `--dry-run`). Returns their ids.
    pub async fn schedule_project_now(
        &self,
        project: &berth_db::entity::projects::Model,
    ) -> anyhow::Result<Vec<i64>> {
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        let ids = self.repository_ids(&txn, project).await?;
        q::schedule(&txn, &ids, now, Utc::now()).await?;
        txn.commit().await?;
        Ok(ids)
    }

    /// Claim one waiting repository (of `only`, when given; never one in `skip`) and run a
    /// slice of its policy. `None` when nothing was waiting. `manual` runs the policy even
    /// while it is disabled (an operator asked for it).
    pub async fn run_once(
        &self,
        stop: &watch::Receiver<bool>,
        only: Option<&[i64]>,
        skip: &[i64],
        manual: bool,
    ) -> anyhow::Result<Option<SliceReport>> {
        let now = Utc::now();
        if !q::any_claimable(&self.db.read, now).await? {
            return Ok(None);
        }
        let claimed = {
            let txn = self.db.begin_write().await?;
            let c = q::claim(&txn, &self.owner, self.lease_until(), now, only, skip).await?;
            txn.commit().await?;
            c
        };
        let Some(state) = claimed else {
            return Ok(None);
        };
        let started = Instant::now();
        let report = self.run_slice(&state, stop, manual, started).await?;
        metrics::counter!(
            "berth_cleanup_runs_total",
            "result" => if report.complete { "complete" } else { "unfinished" },
        )
        .increment(1);
        metrics::counter!("berth_cleanup_tags_deleted_total").increment(report.deleted);
        tracing::info!(
            repository.id = report.repository_id,
            repository.name = %report.repository,
            deleted_tags = report.deleted,
            complete = report.complete,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "cleanup slice finished"
        );
        Ok(Some(report))
    }

    /// One slice of `state`'s run, ended with [`q::finish`].
    async fn run_slice(
        &self,
        state: &CleanupState,
        stop: &watch::Receiver<bool>,
        manual: bool,
        claimed: Instant,
    ) -> anyhow::Result<SliceReport> {
        let id = state.repository_id;
        let as_of = state
            .expiration_policy_started_at
            .unwrap_or_else(|| self.clock.now());
        let mut report = SliceReport {
            repository_id: id,
            repository: String::new(),
            deleted: 0,
            complete: true,
            claimed,
            released: claimed,
        };
        let c = &self.db.read;
        let target = match berth_db::registry_read::repository(c, id).await? {
            Some(repo) => {
                report.repository.clone_from(&repo.name);
                let project = berth_db::access::project_for_repository(c, &repo.name).await?;
                match project {
                    // Without a stored policy, GitLab's defaults (disabled: only a manual
                    // run applies them).
                    Some(p) => Some((
                        p.id,
                        berth_db::expiration_policies::get(c, p.id)
                            .await?
                            .map_or_else(Policy::default, |row| {
                                berth_db::expiration_policies::policy(&row)
                            }),
                    )),
                    None => None,
                }
            }
            None => None,
        };
        let runnable = |p: &Policy| manual || p.enabled;
        let doomed = match &target {
            Some((project_id, policy)) if runnable(policy) => match cleanup_plan::rules(policy) {
                Ok(rules) => cleanup_plan::evaluate(c, *project_id, id, &rules, as_of)
                    .await?
                    .doomed(),
                Err(e) => {
                    tracing::warn!(repository.id = id, error = %e, "cleanup policy rules invalid; nothing deleted");
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        let cap = usize::try_from(self.cap).unwrap_or(usize::MAX);
        let this_slice = &doomed[..doomed.len().min(cap)];
        report.complete = doomed.len() <= cap;
        if let Some((project_id, _)) = target {
            for chunk in this_slice.chunks(usize::try_from(self.batch).unwrap_or(100)) {
                match self.delete_batch(project_id, id, chunk, as_of).await? {
                    Some(n) => report.deleted += n,
                    None => {
                        tracing::warn!(repository.id = id, "lost the cleanup lease");
                        report.complete = false;
                        report.released = Instant::now();
                        return Ok(report);
                    }
                }
                if *stop.borrow() {
                    report.complete = false;
                    break;
                }
            }
        }
        report.released = Instant::now();
        let txn = self.db.begin_write().await?;
        q::finish(&txn, id, &self.owner, report.complete, Utc::now()).await?;
        txn.commit().await?;
        Ok(report)
    }

    /// Delete `names` (those still there, not re-pushed after `as_of`, not immutable) in
    /// one transaction of the content library that also renews the lease. `None`: the lease
    /// was lost and nothing was deleted.
    async fn delete_batch(
        &self,
        project_id: i64,
        repository_id: i64,
        names: &[String],
        as_of: DateTime<Utc>,
    ) -> anyhow::Result<Option<u64>> {
        let batch = TagBatch {
            repository_id,
            names,
            unchanged_since: Some(as_of),
        };
        let guard = LeaseGuard {
            repository_id,
            owner: &self.owner,
            until: self.lease_until(),
        };
        let deleted = self
            .content
            .delete_tags(batch, Immutable::OfProject(project_id), &guard)
            .await?;
        Ok(deleted.map(|outcome| outcome.deleted.len() as u64))
    }
}

/// Renews a cleanup's lease inside the batch's transaction; a lost lease rolls it back.
struct LeaseGuard<'a> {
    repository_id: i64,
    owner: &'a str,
    until: DateTime<Utc>,
}

impl BatchGuard for LeaseGuard<'_> {
    async fn allow(
        &self,
        txn: &berth_db::sea_orm::DatabaseTransaction,
        deleted: u64,
    ) -> Result<bool, berth_db::Error> {
        Ok(q::renew(txn, self.repository_id, self.owner, deleted, self.until).await?)
    }
}

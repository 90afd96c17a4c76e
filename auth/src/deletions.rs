//! The registry-deletion worker: runs the repository deletions and bulk tag deletions the
//! API schedules (`registry_deletions`), one request at a time per replica.
//!
//! - **Claiming.** A request is claimed with a lease by one conditional UPDATE
//!   ([`berth_db::registry_deletions::claim`]), so of several replicas exactly one runs it;
//!   requests for one repository run one after another, oldest first.
//! - **Batches.** Each run works in transactions of at most `deletion_batch_size` (100) tags
//!   (or manifests; five times as many blob links); every batch renews the lease and adds to `deleted_count` in the same
//!   transaction, and rolls back if this replica lost the lease meanwhile.
//! - **Idempotent, resumable.** A kill -9 leaves the request `running` with a lease that
//!   runs out; the next claim (here or elsewhere) starts the run again, and re-running
//!   deletes only what is still there. A bulk delete judges the tags *as of the request*:
//!   `older_than` counts back from the request's creation time, and tags pushed or moved
//!   after it are left alone and not counted, so a resumed run selects the same tags.
//! - **GC.** Tags go through [`berth_db::tags::delete_and_queue`], manifests through
//!   [`berth_db::manifests::delete_and_queue`], blob links are queued (`blob_unlink`): blobs
//!   are never deleted here; the gc-worker deletes what nothing references after review, so
//!   layers other repositories share stay pullable.
//! - **Immutable tags** are re-read from the database inside every batch and skipped. A
//!   repository that has one is not deleted at all: the request fails (`delete_failed`)
//!   before anything is touched, naming the tags.

use std::time::Duration;

use berth_core::cleanup::{Decision, Rules, TagFacts};
use berth_core::immutability::TagPatterns;
use berth_db::entity::registry_deletions::Model as Request;
use berth_db::registry_deletions::{self as q, DONE, FAILED};
use berth_db::sea_orm::{ConnectionTrait, EntityTrait};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::state::AppState;

/// How often an idle worker looks for due requests (it is also woken at once when this
/// replica's API schedules one).
const POLL: Duration = Duration::from_secs(3);

/// "No limit" for queries that must see every row (a LIMIT PostgreSQL accepts).
const ALL: u64 = i64::MAX as u64;

/// How many times a repository deletion starts over when pushes keep adding to it.
const MAX_PASSES: usize = 5;

/// The stored rules of a bulk tag deletion (GitLab's parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkParams {
    /// Tags to delete (whole-name regex).
    pub name_regex_delete: String,
    /// Tags to keep whatever else says.
    pub name_regex_keep: Option<String>,
    /// Keep the newest N of the matching tags.
    pub keep_n: Option<i64>,
    /// Keep tags published less than this long before the request (`1h`, `7d`, `1month`).
    pub older_than: Option<String>,
}

impl BulkParams {
    /// The compiled rules.
    pub fn rules(&self) -> Result<Rules, berth_core::cleanup::RulesError> {
        Rules::new(
            &self.name_regex_delete,
            self.name_regex_keep.as_deref(),
            self.keep_n,
            self.older_than.as_deref(),
        )
    }
}

/// How a run ended.
enum Outcome {
    /// Finished (already recorded when `recorded`).
    Done { recorded: bool },
    /// Gave up with this message.
    Failed(String),
    /// Another replica holds the request now.
    Lost,
    /// Asked to stop between batches.
    Stopped,
}

/// One replica's worker.
pub struct Worker {
    state: AppState,
    owner: String,
    lease: Duration,
    batch: u64,
}

impl Worker {
    /// A worker holding claimed requests for `lease` between batches of `batch` tags.
    pub fn new(state: AppState, lease: Duration, batch: u64) -> Self {
        Worker {
            state,
            owner: uuid::Uuid::new_v4().to_string(),
            lease,
            batch: batch.max(1),
        }
    }

    /// Run until `stop` turns true: claim and run due requests, else wait for a wake-up or
    /// the poll interval. A request in progress at stop is given back between batches.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.run_once(&stop).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = format!("{e:#}"), "registry deletion failed"),
            }
            tokio::select! {
                () = self.state.deletions.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    fn lease_until(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(30))
    }

    /// Claim one due request and run it. `false` when none was due.
    pub async fn run_once(&self, stop: &watch::Receiver<bool>) -> anyhow::Result<bool> {
        let db = &self.state.db;
        let now = Utc::now();
        if !q::any_due(&db.read, now).await? {
            return Ok(false);
        }
        let claimed = {
            let txn = db.begin_write().await?;
            let claimed = q::claim(&txn, &self.owner, self.lease_until(), now).await?;
            txn.commit().await?;
            claimed
        };
        let Some(req) = claimed else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        tracing::info!(
            deletion.id = req.id,
            deletion.kind = %req.kind,
            repository.id = req.repository_id,
            repository.name = %req.repository_path,
            "running registry deletion"
        );
        let outcome = match req.kind.as_str() {
            q::KIND_REPOSITORY => self.delete_repository(&req, stop).await,
            q::KIND_TAGS => self.delete_tags(&req, stop).await,
            other => Ok(Outcome::Failed(format!("unknown deletion kind {other}"))),
        }?;
        let (status, error, recorded) = match outcome {
            Outcome::Done { recorded } => (DONE, None, recorded),
            Outcome::Failed(e) => (FAILED, Some(e), false),
            Outcome::Lost => {
                tracing::warn!(
                    deletion.id = req.id,
                    "lost the lease on a registry deletion"
                );
                return Ok(true);
            }
            Outcome::Stopped => {
                q::release(&db.write, req.id, &self.owner).await?;
                tracing::info!(
                    deletion.id = req.id,
                    "registry deletion paused for shutdown"
                );
                return Ok(true);
            }
        };
        if !recorded {
            let txn = db.begin_write().await?;
            q::finish(&txn, req.id, &self.owner, status, error.clone(), Utc::now()).await?;
            txn.commit().await?;
        }
        metrics::counter!(
            "berth_registry_deletions_total",
            "kind" => req.kind.clone(),
            "status" => status,
        )
        .increment(1);
        let done = q::find(&db.read, req.id).await?;
        tracing::info!(
            deletion.id = req.id,
            deletion.status = status,
            deletion.error = error.as_deref().unwrap_or(""),
            deleted_count = done.map_or(0, |d| d.deleted_count),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "registry deletion finished"
        );
        Ok(true)
    }

    /// The project's immutable tag rules, read on `c` (inside a batch's transaction).
    async fn immutable(
        &self,
        c: &impl ConnectionTrait,
        project_id: i64,
    ) -> anyhow::Result<TagPatterns> {
        let patterns = berth_db::tag_rules::patterns(c, project_id).await?;
        let (rules, invalid) = TagPatterns::compile(&patterns);
        if !invalid.is_empty() {
            tracing::warn!(project.id = project_id, patterns = ?invalid, "invalid immutable tag patterns ignored");
        }
        Ok(rules)
    }

    /// Delete the tags named `names` (those still there, not immutable, and for a bulk
    /// delete not moved after `as_of`) in one transaction. `None`: the lease was lost.
    /// Returns how many went and which were immutable.
    async fn delete_batch(
        &self,
        req: &Request,
        names: &[String],
        as_of: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Option<(u64, Vec<String>)>> {
        let now = Utc::now();
        let review_after = self.state.review_after(now);
        let txn = self.state.db.begin_write().await?;
        let immutable = self.immutable(&txn, req.project_id).await?;
        let mut deleted = 0;
        let mut kept = Vec::new();
        for name in names {
            let Some(tag) = berth_db::tags::find(&txn, req.repository_id, name).await? else {
                continue;
            };
            if as_of.is_some_and(|t| tag.updated_at > t) {
                continue;
            }
            if immutable.matching(name).is_some() {
                kept.push(name.clone());
                continue;
            }
            berth_db::tags::delete_and_queue(&txn, req.repository_id, name, review_after, now)
                .await?;
            deleted += 1;
        }
        if !q::renew(&txn, req.id, &self.owner, deleted, self.lease_until()).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        metrics::counter!("berth_registry_deletion_tags_deleted_total").increment(deleted);
        Ok(Some((deleted, kept)))
    }

    /// A bulk tag deletion: the rules judged once over the tags as of the request, then the
    /// selected tags deleted in batches.
    async fn delete_tags(
        &self,
        req: &Request,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<Outcome> {
        let params: BulkParams = match serde_json::from_str(&req.params) {
            Ok(p) => p,
            Err(e) => {
                return Ok(Outcome::Failed(format!(
                    "unreadable bulk-delete rules: {e}"
                )));
            }
        };
        let rules = match params.rules() {
            Ok(r) => r,
            Err(e) => return Ok(Outcome::Failed(e.to_string())),
        };
        let c = &self.state.db.read;
        let as_of = req.created_at;
        let rows = q::tags_with_digests(c, req.repository_id).await?;
        let facts: Vec<TagFacts> = rows
            .into_iter()
            .filter(|r| r.tag.updated_at <= as_of)
            .map(|r| TagFacts {
                name: r.tag.name,
                published_at: r.tag.updated_at,
                digest: r.digest,
            })
            .collect();
        let immutable = self.immutable(c, req.project_id).await?;
        let decisions = rules.evaluate(&facts, &immutable, as_of);
        let doomed: Vec<String> = facts
            .into_iter()
            .zip(decisions)
            .filter(|(_, d)| *d == Decision::Delete)
            .map(|(t, _)| t.name)
            .collect();
        for chunk in doomed.chunks(usize::try_from(self.batch).unwrap_or(100)) {
            if self.delete_batch(req, chunk, Some(as_of)).await?.is_none() {
                return Ok(Outcome::Lost);
            }
            if *stop.borrow() {
                return Ok(Outcome::Stopped);
            }
        }
        Ok(Outcome::Done { recorded: false })
    }

    /// A repository deletion: every tag, then its manifests (parents before children), then
    /// its blob links, then the row; started over if a push adds something meanwhile.
    async fn delete_repository(
        &self,
        req: &Request,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<Outcome> {
        let db = &self.state.db;
        let repo = req.repository_id;
        // Refuse before touching anything when an immutable tag would have to go.
        let immutable = self.immutable(&db.read, req.project_id).await?;
        if !immutable.is_empty() {
            let names = berth_db::tags::list_names(&db.read, repo, None, ALL).await?;
            let protected: Vec<&String> = names
                .iter()
                .filter(|n| immutable.matching(n).is_some())
                .collect();
            if !protected.is_empty() {
                return Ok(Outcome::Failed(immutable_error(&protected)));
            }
        }
        for _ in 0..MAX_PASSES {
            // Tags, by name in batches.
            let mut after: Option<String> = None;
            loop {
                let names =
                    berth_db::tags::list_names(&db.read, repo, after.as_deref(), self.batch)
                        .await?;
                let Some(last) = names.last().cloned() else {
                    break;
                };
                let Some((_, kept)) = self.delete_batch(req, &names, None).await? else {
                    return Ok(Outcome::Lost);
                };
                if !kept.is_empty() {
                    return Ok(Outcome::Failed(immutable_error(&kept)));
                }
                after = Some(last);
                if *stop.borrow() {
                    return Ok(Outcome::Stopped);
                }
            }
            // Manifests: those no index lists first, so an index goes before its children.
            loop {
                let now = Utc::now();
                let txn = db.begin_write().await?;
                let batch = q::unreferenced_manifests(&txn, repo, self.batch).await?;
                for m in &batch {
                    berth_db::manifests::delete_and_queue(
                        &txn,
                        m,
                        self.state.review_after(now),
                        now,
                    )
                    .await?;
                }
                if !q::renew(&txn, req.id, &self.owner, 0, self.lease_until()).await? {
                    txn.rollback().await?;
                    return Ok(Outcome::Lost);
                }
                txn.commit().await?;
                if batch.is_empty() {
                    break;
                }
                if *stop.borrow() {
                    return Ok(Outcome::Stopped);
                }
            }
            // Blob links, then the row itself, in one last transaction that checks nothing
            // was pushed meanwhile.
            let now = Utc::now();
            let review_after = self.state.review_after(now);
            loop {
                let txn = db.begin_write().await?;
                let unlinked =
                    q::unlink_blobs(&txn, repo, self.batch * 5, review_after, now).await?;
                if !q::renew(&txn, req.id, &self.owner, 0, self.lease_until()).await? {
                    txn.rollback().await?;
                    return Ok(Outcome::Lost);
                }
                txn.commit().await?;
                if unlinked == 0 {
                    break;
                }
            }
            let txn = db.begin_write().await?;
            let tags_left = !berth_db::tags::list_names(&txn, repo, None, 1)
                .await?
                .is_empty();
            if tags_left || q::has_manifests(&txn, repo).await? {
                txn.rollback().await?;
                continue;
            }
            q::unlink_blobs(&txn, repo, ALL, review_after, now).await?;
            berth_db::entity::repositories::Entity::delete_by_id(repo)
                .exec(&txn)
                .await?;
            if !q::finish(&txn, req.id, &self.owner, DONE, None, now).await? {
                txn.rollback().await?;
                return Ok(Outcome::Lost);
            }
            txn.commit().await?;
            return Ok(Outcome::Done { recorded: true });
        }
        Ok(Outcome::Failed(
            "the repository kept receiving pushes while it was being deleted".into(),
        ))
    }
}

fn immutable_error(tags: &[impl AsRef<str>]) -> String {
    let mut names: Vec<&str> = tags.iter().map(AsRef::as_ref).take(10).collect();
    names.sort_unstable();
    let more = if tags.len() > 10 { ", …" } else { "" };
    format!(
        "the repository has immutable tags, which cannot be deleted ({}{more}); remove the project's immutable tag rules first",
        names.join(", ")
    )
}

/// Start the worker on the current runtime; returns its stop switch and handle.
pub fn spawn(
    state: AppState,
    lease: Duration,
    batch: u64,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let worker = Worker::new(state, lease, batch);
    (tx, tokio::spawn(worker.run(rx)))
}

//! Queries on background jobs (`jobs`): enqueueing one, claiming one with a lease, fenced
//! progress, the ends of an attempt (success, failure, retry later, hand back), and what
//! the API shows of deletion jobs (a repository's GitLab `status`, listings).
//!
//! Claims: a worker takes the oldest due job inside a write transaction with
//! `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1` on PostgreSQL, so workers in any number of
//! processes each get a different row without waiting for each other; on SQLite these
//! clauses are not emitted and the write transaction ([`crate::Db::begin_write`]) holds the
//! database's one write lock, which is the same guarantee. The claim sets the job `running`
//! under the worker's lease and commits at once.
//!
//! Leases: a worker owns a job while `lease_owner` is its id, the state is `running` and
//! `lease_until` is in the future. Each batch of work re-checks ownership first thing in its
//! transaction ([`renew`], which also locks the job row on PostgreSQL); a worker that
//! stalled past its lease and lost the job to another finds 0 rows updated and rolls its
//! batch back, so two workers never both write a job's work. A worker that dies leaves the
//! job `running` with a lease that runs out; the next claim takes it as it is.

use std::collections::HashMap;

use berth_core::jobs::{JobKind, JobPayload, JobState};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::entity::jobs::{self, Column, Entity, Model};
use crate::lease::Lease;

const QUEUED: &str = "queued";
const RUNNING: &str = "running";

/// Where a job keeps its lease.
const LEASE: Lease<Entity> = Lease {
    key: Column::Id,
    status: Column::State,
    held: RUNNING,
    owner: Column::LeaseOwner,
    until: Column::LeaseUntil,
    count: Column::Progress,
};

/// The typed view of a stored job.
pub trait JobRow {
    /// Its kind; `None` for a name this version does not know.
    fn job_kind(&self) -> Option<JobKind>;
    /// Its state; `None` for a name this version does not know.
    fn job_state(&self) -> Option<JobState>;
}

impl JobRow for Model {
    fn job_kind(&self) -> Option<JobKind> {
        self.kind.parse().ok()
    }
    fn job_state(&self) -> Option<JobState> {
        self.state.parse().ok()
    }
}

/// Insert a `queued` job carrying `payload`, due now; returns it.
pub async fn enqueue(
    c: &impl ConnectionTrait,
    payload: &JobPayload,
    now: DateTime<Utc>,
) -> Result<Model, DbErr> {
    let target = payload.target();
    let row = jobs::ActiveModel {
        kind: Set(payload.kind().as_str().to_owned()),
        payload: Set(payload.to_json()),
        state: Set(QUEUED.to_owned()),
        attempts: Set(0),
        progress: Set(0),
        project_id: Set(target.project_id),
        repository_id: Set(Some(target.repository_id)),
        lease_owner: Set(None),
        lease_until: Set(None),
        run_after: Set(now),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        ..Default::default()
    };
    let id = Entity::insert(row).exec(c).await?.last_insert_id;
    find(c, id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("job {id}")))
}

/// One job by id.
pub async fn find(c: &impl ConnectionTrait, id: i64) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id).one(c).await
}

/// The unfinished repository deletion of a repository, if one is queued or running.
pub async fn pending_repository_deletion(
    c: &impl ConnectionTrait,
    repository_id: i64,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::RepositoryId.eq(repository_id))
        .filter(Column::Kind.eq(JobKind::DeleteRepository.as_str()))
        .filter(Column::State.is_in([QUEUED, RUNNING]))
        .order_by_asc(Column::Id)
        .one(c)
        .await
}

/// A repository's jobs, newest first, at most `limit`.
pub async fn for_repository(
    c: &impl ConnectionTrait,
    repository_id: i64,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::RepositoryId.eq(repository_id))
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(c)
        .await
}

/// A project's jobs (optionally of one repository), newest first, at most `limit`.
pub async fn for_project(
    c: &impl ConnectionTrait,
    project_id: i64,
    repository_id: Option<i64>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut q = Entity::find().filter(Column::ProjectId.eq(project_id));
    if let Some(r) = repository_id {
        q = q.filter(Column::RepositoryId.eq(r));
    }
    q.order_by_desc(Column::Id).limit(limit).all(c).await
}

/// How a repository's latest deletion job stands, as GitLab's repository `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionStatus {
    /// Queued (possibly waiting to retry after a failed attempt).
    Scheduled,
    /// A worker is deleting it.
    Ongoing,
    /// It failed, for this reason.
    Failed(String),
}

impl DeletionStatus {
    /// GitLab's name: `delete_scheduled`, `delete_ongoing`, `delete_failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeletionStatus::Scheduled => "delete_scheduled",
            DeletionStatus::Ongoing => "delete_ongoing",
            DeletionStatus::Failed(_) => "delete_failed",
        }
    }
}

/// The deletion status of each of `repository_ids` that has an unfinished or failed
/// repository deletion as its latest one.
pub async fn repository_statuses(
    c: &impl ConnectionTrait,
    repository_ids: &[i64],
) -> Result<HashMap<i64, DeletionStatus>, DbErr> {
    if repository_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Option<i64>, String, Option<String>)> = Entity::find()
        .select_only()
        .column(Column::RepositoryId)
        .column(Column::State)
        .column(Column::LastError)
        .filter(Column::RepositoryId.is_in(repository_ids.iter().copied()))
        .filter(Column::Kind.eq(JobKind::DeleteRepository.as_str()))
        .order_by_asc(Column::Id)
        .into_tuple()
        .all(c)
        .await?;
    let mut out = HashMap::new();
    for (repository_id, state, error) in rows {
        let Some(repository_id) = repository_id else {
            continue;
        };
        match state.parse::<JobState>() {
            Ok(JobState::Queued) => out.insert(repository_id, DeletionStatus::Scheduled),
            Ok(JobState::Running) => out.insert(repository_id, DeletionStatus::Ongoing),
            Ok(JobState::Failed) => out.insert(
                repository_id,
                DeletionStatus::Failed(error.unwrap_or_default()),
            ),
            Ok(JobState::Succeeded) | Err(_) => out.remove(&repository_id),
        };
    }
    Ok(out)
}

/// Due jobs: unfinished, due (`run_after` passed), lease free or run out, and no older
/// unfinished job for the same repository (one repository's jobs run one after another, in
/// the order they were requested).
fn due(now: DateTime<Utc>) -> sea_orm::Select<Entity> {
    let earlier = Alias::new("earlier");
    let blocked = Query::select()
        .expr(Expr::val(1))
        .from_as(Entity, earlier.clone())
        .and_where(
            Expr::col((earlier.clone(), Column::RepositoryId))
                .equals((Entity, Column::RepositoryId)),
        )
        .and_where(Expr::col((earlier.clone(), Column::Id)).lt(Expr::col((Entity, Column::Id))))
        .and_where(Expr::col((earlier, Column::State)).is_in([QUEUED, RUNNING]))
        .to_owned();
    Entity::find()
        .filter(Column::State.is_in([QUEUED, RUNNING]))
        .filter(Column::RunAfter.lte(now))
        .filter(LEASE.free(now))
        .filter(Expr::exists(blocked).not())
}

/// Is any job due? A plain read, so idle workers poll without taking SQLite's write lock.
pub async fn any_due(c: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool, DbErr> {
    Ok(due(now)
        .select_only()
        .column(Column::Id)
        .limit(1)
        .into_tuple::<i64>()
        .one(c)
        .await?
        .is_some())
}

/// Inside a write transaction the caller commits at once: take the oldest due job (rows
/// other workers are claiming are skipped on PostgreSQL) and set it `running` under
/// `owner`'s lease until `lease_until`, counting the attempt. Returns the claimed job.
pub async fn claim(
    txn: &impl ConnectionTrait,
    owner: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<Model>, DbErr> {
    let Some(job) = due(now)
        .order_by_asc(Column::Id)
        .limit(1)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    Entity::update_many()
        .col_expr(Column::State, Expr::value(RUNNING))
        .col_expr(Column::LeaseOwner, Expr::value(owner))
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(
            Column::StartedAt,
            Expr::value(job.started_at.unwrap_or(now)),
        )
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(job.id))
        .exec(txn)
        .await?;
    find(txn, job.id).await
}

/// First thing in a batch's transaction: extend `owner`'s lease on job `id` (locking the
/// job row until the transaction ends) and add `done` to its progress. `false` when `owner`
/// no longer holds it: the caller must roll back.
pub async fn renew(
    c: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    done: u64,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    LEASE.renew(c, id, owner, done, lease_until).await
}

/// End `owner`'s attempt at job `id` for good: `succeeded`, or `failed` with `error`.
/// `false` when `owner` no longer holds it.
pub async fn finish(
    c: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let state = if error.is_some() {
        JobState::Failed
    } else {
        JobState::Succeeded
    };
    let mut q = Entity::update_many()
        .col_expr(Column::State, Expr::value(state.as_str()))
        .col_expr(Column::FinishedAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    if let Some(e) = error {
        q = q.col_expr(Column::LastError, Expr::value(e));
    }
    let res = q.filter(LEASE.held_by(id, owner)).exec(c).await?;
    Ok(res.rows_affected == 1)
}

/// End `owner`'s failed attempt at job `id` with `error`, queued again to run after
/// `run_after`. `false` when `owner` no longer holds it.
pub async fn retry_later(
    c: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    error: &str,
    run_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = Entity::update_many()
        .col_expr(Column::State, Expr::value(QUEUED))
        .col_expr(Column::LastError, Expr::value(error))
        .col_expr(Column::RunAfter, Expr::value(run_after))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(LEASE.held_by(id, owner))
        .exec(c)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Give job `id` back without counting the attempt (graceful shutdown, or an attempt that
/// only lost a race to a concurrent write): queued and due at once for any worker.
pub async fn release(
    c: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = Entity::update_many()
        .col_expr(Column::State, Expr::value(QUEUED))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).sub(1))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(LEASE.held_by(id, owner))
        .exec(c)
        .await?;
    Ok(res.rows_affected == 1)
}

/// How many jobs are queued and running (the gauges berth-gc exports).
pub async fn depths(c: &impl ConnectionTrait) -> Result<(u64, u64), DbErr> {
    let queued = Entity::find()
        .filter(Column::State.eq(QUEUED))
        .count(c)
        .await?;
    let running = Entity::find()
        .filter(Column::State.eq(RUNNING))
        .count(c)
        .await?;
    Ok((queued, running))
}

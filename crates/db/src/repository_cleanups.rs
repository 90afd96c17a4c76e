//! Queries on the cleanup-policy state of repositories (`container_repository_cleanups`,
//! m0009, GitLab's `expiration_policy_*` fields): which policies are due, scheduling a
//! policy's repositories, claiming one with a lease, fenced progress, and the end of a
//! slice (`cleanup_unscheduled` when done, `cleanup_unfinished` when cut short).
//!
//! Life of a run: the scheduler finds an enabled policy whose `next_run_at` has passed and,
//! in one transaction, moves `next_run_at` on by the cadence (only if nobody else did:
//! [`advance_policy`]) and marks each of the project's repositories `cleanup_scheduled`
//! with `expiration_policy_started_at` = the run's start ([`schedule`]). A worker claims a
//! repository ([`claim`]: one conditional UPDATE to `cleanup_ongoing` with a lease), deletes
//! in batches that each renew the lease in their own transaction ([`renew`]: 0 rows means
//! the lease was lost and the batch is rolled back), and ends the slice ([`finish`]). A
//! worker that dies leaves `cleanup_ongoing` with a lease that runs out; it is then
//! claimable again, like `cleanup_unfinished`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::entity::container_expiration_policies as policies;
use crate::entity::container_repository_cleanups::{self as cleanups, Column, Entity, Model};
use crate::entity::{projects, repositories};
use crate::lease::Lease;
use crate::registry_read;

/// No run pending (also what a repository without a row reads as).
pub const UNSCHEDULED: &str = "cleanup_unscheduled";
/// The policy is due: a worker will take the repository soon.
pub const SCHEDULED: &str = "cleanup_scheduled";
/// A run was cut short (per-run cap, shutdown, lost lease); the next tick resumes it.
pub const UNFINISHED: &str = "cleanup_unfinished";
/// A worker is running it (or died doing so: the lease then runs out).
pub const ONGOING: &str = "cleanup_ongoing";

/// Enabled policies whose `next_run_at` is at or before `now`, at most `n`, oldest first.
pub async fn due_policies(
    c: &impl ConnectionTrait,
    now: DateTime<Utc>,
    n: u64,
) -> Result<Vec<policies::Model>, DbErr> {
    use policies::Column as P;
    policies::Entity::find()
        .filter(P::Enabled.eq(true))
        .filter(P::NextRunAt.lte(now))
        .order_by_asc(P::NextRunAt)
        .limit(n)
        .all(c)
        .await
}

/// Move policy `project_id`'s `next_run_at` from `from` to `to`, only if it is still
/// enabled and still at `from`. `false` when another scheduler got there first (the caller
/// rolls back), so a due policy is scheduled once however many gc-workers tick at once.
pub async fn advance_policy(
    c: &impl ConnectionTrait,
    project_id: i64,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> Result<bool, DbErr> {
    use policies::Column as P;
    let res = policies::Entity::update_many()
        .col_expr(P::NextRunAt, Expr::value(to))
        .filter(P::ProjectId.eq(project_id))
        .filter(P::Enabled.eq(true))
        .filter(P::NextRunAt.eq(from))
        .exec(c)
        .await?;
    Ok(res.rows_affected == 1)
}

/// The repositories of `project`: those under its path that no project nested below it
/// owns (the rule of [`crate::access::project_for_repository`]).
pub async fn project_repositories(
    c: &impl ConnectionTrait,
    project: &projects::Model,
) -> Result<Vec<repositories::Model>, DbErr> {
    let nested = registry_read::projects_under(c, &project.full_path).await?;
    let mut paths = vec![project.full_path.as_str()];
    paths.extend(nested.iter().map(|p| p.full_path.as_str()));
    Ok(registry_read::repositories_under(c, &project.full_path)
        .await?
        .into_iter()
        .filter(|r| registry_read::owner_of(&r.name, &paths) == Some(0))
        .collect())
}

/// Mark `repository_ids` `cleanup_scheduled` for a run that judges tags as of `started_at`.
/// A repository whose run is still ongoing under a live lease is left to finish it; one
/// left unfinished by an earlier run starts over with the new start time (a superset of
/// the old run's work). Returns how many were scheduled.
pub async fn schedule(
    c: &impl ConnectionTrait,
    repository_ids: &[i64],
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut scheduled = 0;
    for &id in repository_ids {
        let row = cleanups::ActiveModel {
            repository_id: Set(id),
            expiration_policy_cleanup_status: Set(SCHEDULED.to_owned()),
            expiration_policy_started_at: Set(Some(started_at)),
            expiration_policy_completed_at: Set(None),
            last_cleanup_deleted_tags_count: Set(None),
            run_deleted_tags_count: Set(0),
            lease_owner: Set(None),
            lease_until: Set(None),
            updated_at: Set(now),
        };
        let inserted = Entity::insert(row)
            .on_conflict(
                OnConflict::column(Column::RepositoryId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(c)
            .await?;
        if inserted == 1 {
            scheduled += 1;
            continue;
        }
        let res = Entity::update_many()
            .col_expr(
                Column::ExpirationPolicyCleanupStatus,
                Expr::value(SCHEDULED),
            )
            .col_expr(Column::ExpirationPolicyStartedAt, Expr::value(started_at))
            .col_expr(Column::RunDeletedTagsCount, Expr::value(0i64))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::RepositoryId.eq(id))
            .filter(
                Condition::any()
                    .add(Column::ExpirationPolicyCleanupStatus.ne(ONGOING))
                    .add(LEASE.free(now)),
            )
            .exec(c)
            .await?;
        scheduled += res.rows_affected;
    }
    Ok(scheduled)
}

/// Where a cleanup run keeps its lease.
const LEASE: Lease<Entity> = Lease {
    key: Column::RepositoryId,
    status: Column::ExpirationPolicyCleanupStatus,
    held: ONGOING,
    owner: Column::LeaseOwner,
    until: Column::LeaseUntil,
    count: Column::RunDeletedTagsCount,
};

fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(Column::ExpirationPolicyCleanupStatus.is_in([SCHEDULED, UNFINISHED, ONGOING]))
        .add(LEASE.free(now))
}

/// Is any repository waiting for a worker? A read, so idle workers poll without taking
/// SQLite's write lock.
pub async fn any_claimable(c: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool, DbErr> {
    Ok(Entity::find()
        .select_only()
        .column(Column::RepositoryId)
        .filter(claimable(now))
        .limit(1)
        .into_tuple::<i64>()
        .one(c)
        .await?
        .is_some())
}

/// Claim a repository waiting for a worker (`cleanup_scheduled` first, then unfinished and
/// abandoned runs, as GitLab picks), setting it `cleanup_ongoing` under `owner`'s lease. The
/// claim is one conditional UPDATE, so of several workers racing for a repository exactly
/// one wins. `only` restricts the claim to those repositories (a run started by hand);
/// `skip` excludes some (those a tick already ran a slice of).
pub async fn claim(
    c: &impl ConnectionTrait,
    owner: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
    only: Option<&[i64]>,
    skip: &[i64],
) -> Result<Option<Model>, DbErr> {
    let mut q = Entity::find().filter(claimable(now));
    if let Some(ids) = only {
        q = q.filter(Column::RepositoryId.is_in(ids.iter().copied()));
    }
    if !skip.is_empty() {
        q = q.filter(Column::RepositoryId.is_not_in(skip.iter().copied()));
    }
    let mut candidates = q.order_by_asc(Column::UpdatedAt).limit(16).all(c).await?;
    candidates.sort_by_key(|m| m.expiration_policy_cleanup_status != SCHEDULED);
    let candidates = candidates.into_iter().map(|m| m.repository_id);
    let won = LEASE
        .claim(c, candidates, owner, lease_until, claimable(now), |q| {
            q.col_expr(Column::UpdatedAt, Expr::value(now))
        })
        .await?;
    match won {
        Some(repository_id) => find(c, repository_id).await,
        None => Ok(None),
    }
}

/// Inside a batch's transaction: extend `owner`'s lease on `repository_id` and add
/// `deleted` to the run's count. `false` when `owner` no longer holds it (roll back).
pub async fn renew(
    c: &impl ConnectionTrait,
    repository_id: i64,
    owner: &str,
    deleted: u64,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    LEASE
        .renew(c, repository_id, owner, deleted, lease_until)
        .await
}

/// End `owner`'s slice of `repository_id`: `complete` → `cleanup_unscheduled` with
/// `expiration_policy_completed_at`; else `cleanup_unfinished` (resumed by a later tick).
/// Either way `last_cleanup_deleted_tags_count` becomes the run's count so far and the
/// lease is freed. `false` when `owner` no longer holds it.
pub async fn finish(
    c: &impl ConnectionTrait,
    repository_id: i64,
    owner: &str,
    complete: bool,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let status = if complete { UNSCHEDULED } else { UNFINISHED };
    let mut q = Entity::update_many()
        .col_expr(Column::ExpirationPolicyCleanupStatus, Expr::value(status))
        .col_expr(
            Column::LastCleanupDeletedTagsCount,
            Expr::col(Column::RunDeletedTagsCount).into(),
        )
        .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::UpdatedAt, Expr::value(now));
    if complete {
        q = q.col_expr(Column::ExpirationPolicyCompletedAt, Expr::value(now));
    }
    let res = q
        .filter(LEASE.held_by(repository_id, owner))
        .exec(c)
        .await?;
    Ok(res.rows_affected == 1)
}

/// A repository's state, if a policy ever touched it.
pub async fn find(c: &impl ConnectionTrait, repository_id: i64) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(repository_id).one(c).await
}

/// The states of `repository_ids` (absent: never touched, `cleanup_unscheduled`).
pub async fn for_repositories(
    c: &impl ConnectionTrait,
    repository_ids: &[i64],
) -> Result<HashMap<i64, Model>, DbErr> {
    if repository_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(Entity::find()
        .filter(Column::RepositoryId.is_in(repository_ids.iter().copied()))
        .all(c)
        .await?
        .into_iter()
        .map(|m| (m.repository_id, m))
        .collect())
}

//! Queries on asynchronous registry deletions (`registry_deletions`): scheduling a request,
//! claiming one with a lease, fenced progress and completion, the status the API shows, and
//! the batches a run deletes (tags, manifests, blob links) with their GC review rows.
//!
//! Leases: a worker owns a request while `lease_owner` is its id and `lease_until` is in
//! the future. Every write of a run re-checks ownership inside the run's transaction
//! ([`renew`]); a worker that stalled past its lease and lost the request to another finds
//! 0 rows updated and rolls its batch back, so two workers never both write a request.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::entity::registry_deletions::{self, Column, Entity, Model};
use crate::entity::{manifest_references, manifests, repository_blobs, tags};
use crate::gc::{self, Event};
use crate::lease::Lease;

/// Kind: delete the whole repository.
pub const KIND_REPOSITORY: &str = "repository";
/// Kind: delete the tags that bulk-delete rules select.
pub const KIND_TAGS: &str = "tags";

/// Waiting for a worker.
pub const SCHEDULED: &str = "scheduled";
/// A worker holds it (or held it and died: the lease then runs out and another resumes it).
pub const RUNNING: &str = "running";
/// Finished.
pub const DONE: &str = "done";
/// Gave up; `error` says why.
pub const FAILED: &str = "failed";

/// A request to schedule.
#[derive(Debug, Clone)]
pub struct NewDeletion<'a> {
    /// The repository.
    pub repository_id: i64,
    /// Its path (kept for display after the row is gone).
    pub repository_path: &'a str,
    /// The project owning it when requested.
    pub project_id: i64,
    /// [`KIND_REPOSITORY`] or [`KIND_TAGS`].
    pub kind: &'static str,
    /// JSON text of the rules (`{}` for a repository).
    pub params: String,
}

/// Insert a `scheduled` request; returns it.
pub async fn schedule(
    c: &impl ConnectionTrait,
    new: NewDeletion<'_>,
    now: DateTime<Utc>,
) -> Result<Model, DbErr> {
    let row = registry_deletions::ActiveModel {
        repository_id: Set(new.repository_id),
        repository_path: Set(new.repository_path.to_owned()),
        project_id: Set(new.project_id),
        kind: Set(new.kind.to_owned()),
        params: Set(new.params),
        status: Set(SCHEDULED.to_owned()),
        error: Set(None),
        deleted_count: Set(0),
        lease_owner: Set(None),
        lease_until: Set(None),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        ..Default::default()
    };
    let id = Entity::insert(row).exec(c).await?.last_insert_id;
    Entity::find_by_id(id)
        .one(c)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("registry deletion {id}")))
}

/// One request by id.
pub async fn find(c: &impl ConnectionTrait, id: i64) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id).one(c).await
}

/// The unfinished repository deletion of a repository, if one is scheduled or running.
pub async fn pending_repository_deletion(
    c: &impl ConnectionTrait,
    repository_id: i64,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::RepositoryId.eq(repository_id))
        .filter(Column::Kind.eq(KIND_REPOSITORY))
        .filter(Column::Status.is_in([SCHEDULED, RUNNING]))
        .order_by_asc(Column::Id)
        .one(c)
        .await
}

/// A repository's requests, newest first, at most `limit`.
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

/// A project's requests (optionally of one repository), newest first, at most `limit`.
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

/// GitLab's repository `status` for each of `repository_ids` that has a repository
/// deletion: `delete_scheduled`, `delete_ongoing` or `delete_failed` from its latest one.
pub async fn repository_statuses(
    c: &impl ConnectionTrait,
    repository_ids: &[i64],
) -> Result<HashMap<i64, &'static str>, DbErr> {
    if repository_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String)> = Entity::find()
        .select_only()
        .column(Column::RepositoryId)
        .column(Column::Status)
        .filter(Column::RepositoryId.is_in(repository_ids.iter().copied()))
        .filter(Column::Kind.eq(KIND_REPOSITORY))
        .order_by_asc(Column::Id)
        .into_tuple()
        .all(c)
        .await?;
    let mut out = HashMap::new();
    for (repository_id, status) in rows {
        match status.as_str() {
            SCHEDULED => out.insert(repository_id, "delete_scheduled"),
            RUNNING => out.insert(repository_id, "delete_ongoing"),
            FAILED => out.insert(repository_id, "delete_failed"),
            _ => out.remove(&repository_id),
        };
    }
    Ok(out)
}

/// Ids of up to `n` due requests, oldest first: unfinished, lease free or run out, and no
/// older unfinished request for the same repository.
async fn due(c: &impl ConnectionTrait, now: DateTime<Utc>, n: u64) -> Result<Vec<i64>, DbErr> {
    let earlier = Alias::new("earlier");
    let blocked = Query::select()
        .expr(Expr::val(1))
        .from_as(Entity, earlier.clone())
        .and_where(
            Expr::col((earlier.clone(), Column::RepositoryId))
                .equals((Entity, Column::RepositoryId)),
        )
        .and_where(Expr::col((earlier.clone(), Column::Id)).lt(Expr::col((Entity, Column::Id))))
        .and_where(Expr::col((earlier, Column::Status)).is_in([SCHEDULED, RUNNING]))
        .to_owned();
    Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.is_in([SCHEDULED, RUNNING]))
        .filter(LEASE.free(now))
        .filter(Expr::exists(blocked).not())
        .order_by_asc(Column::Id)
        .limit(n)
        .into_tuple()
        .all(c)
        .await
}

/// Where a deletion request keeps its lease.
const LEASE: Lease<Entity> = Lease {
    key: Column::Id,
    status: Column::Status,
    held: RUNNING,
    owner: Column::LeaseOwner,
    until: Column::LeaseUntil,
    count: Column::DeletedCount,
};

/// Is any request due? A read, so idle workers poll without taking SQLite's write lock.
pub async fn any_due(c: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool, DbErr> {
    Ok(!due(c, now, 1).await?.is_empty())
}

/// Claim the oldest due request: unfinished, its lease free or run out, and no older
/// unfinished request for the same repository (requests for one repository run one after
/// another, in order). The claim is one conditional UPDATE, so of several workers racing
/// for a request exactly one wins (on PostgreSQL the loser's UPDATE re-checks the row after
/// the winner commits). Returns the claimed request.
pub async fn claim(
    c: &impl ConnectionTrait,
    owner: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<Model>, DbErr> {
    let candidates = due(c, now, 8).await?;
    let claimable = Condition::all()
        .add(Column::Status.is_in([SCHEDULED, RUNNING]))
        .add(LEASE.free(now));
    let won = LEASE
        .claim(c, candidates, owner, lease_until, claimable, |q| {
            q.col_expr(
                Column::StartedAt,
                Func::coalesce([Expr::col(Column::StartedAt).into(), Expr::value(now)]).into(),
            )
        })
        .await?;
    match won {
        Some(id) => find(c, id).await,
        None => Ok(None),
    }
}

/// Inside a run's transaction: extend `owner`'s lease on request `id` and add `deleted` to
/// its count. `false` when `owner` no longer holds it (the caller must roll back).
pub async fn renew(
    c: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    deleted: u64,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    LEASE.renew(c, id, owner, deleted, lease_until).await
}

/// Inside a run's transaction: end request `id` as `status` (`done` or `failed`, with
/// `error`). `false` when `owner` no longer holds it.
pub async fn finish(
    c: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    status: &'static str,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = Entity::update_many()
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(Column::Error, Expr::value(error))
        .col_expr(Column::FinishedAt, Expr::value(now))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(LEASE.held_by(id, owner))
        .exec(c)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Give request `id` back (graceful shutdown): still `running`, lease free, so the next
/// worker resumes it at once.
pub async fn release(c: &impl ConnectionTrait, id: i64, owner: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(LEASE.held_by(id, owner))
        .exec(c)
        .await?;
    Ok(())
}

/// A tag with the digest of the manifest it points at.
#[derive(Debug, Clone)]
pub struct TagRow {
    /// The tag row.
    pub tag: tags::Model,
    /// Its manifest's digest.
    pub digest: String,
}

/// Every tag of a repository with its manifest digest.
pub async fn tags_with_digests(
    c: &impl ConnectionTrait,
    repository_id: i64,
) -> Result<Vec<TagRow>, DbErr> {
    let rows = tags::Entity::find()
        .filter(tags::Column::RepositoryId.eq(repository_id))
        .order_by_asc(tags::Column::Name)
        .all(c)
        .await?;
    let digests: HashMap<i64, String> = manifests::Entity::find()
        .select_only()
        .column(manifests::Column::Id)
        .column(manifests::Column::Digest)
        .filter(manifests::Column::RepositoryId.eq(repository_id))
        .into_tuple::<(i64, String)>()
        .all(c)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|tag| TagRow {
            digest: digests.get(&tag.manifest_id).cloned().unwrap_or_default(),
            tag,
        })
        .collect())
}

/// Up to `n` manifests of a repository that no index of it lists as a child (deletable
/// now: the children's turn comes once their parents are gone).
pub async fn unreferenced_manifests(
    c: &impl ConnectionTrait,
    repository_id: i64,
    n: u64,
) -> Result<Vec<manifests::Model>, DbErr> {
    let children = Query::select()
        .column(manifest_references::Column::ChildId)
        .from(manifest_references::Entity)
        .and_where(Expr::col(manifest_references::Column::RepositoryId).eq(repository_id))
        .to_owned();
    manifests::Entity::find()
        .filter(manifests::Column::RepositoryId.eq(repository_id))
        .filter(manifests::Column::Id.not_in_subquery(children))
        .order_by_asc(manifests::Column::Id)
        .limit(n)
        .all(c)
        .await
}

/// Does the repository still have any manifest?
pub async fn has_manifests(c: &impl ConnectionTrait, repository_id: i64) -> Result<bool, DbErr> {
    Ok(manifests::Entity::find()
        .filter(manifests::Column::RepositoryId.eq(repository_id))
        .one(c)
        .await?
        .is_some())
}

/// Remove up to `n` of a repository's blob links, queueing each blob for GC review
/// (`BlobUnlink`): the blob itself goes only if GC finds nothing referencing it, so layers
/// other repositories share stay. Returns how many links went.
pub async fn unlink_blobs(
    c: &impl ConnectionTrait,
    repository_id: i64,
    n: u64,
    review_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let digests: Vec<String> = repository_blobs::Entity::find()
        .select_only()
        .column(repository_blobs::Column::BlobDigest)
        .filter(repository_blobs::Column::RepositoryId.eq(repository_id))
        .order_by_asc(repository_blobs::Column::BlobDigest)
        .limit(n)
        .into_tuple()
        .all(c)
        .await?;
    for d in &digests {
        gc::enqueue_blob(c, d, Event::BlobUnlink, review_after, now).await?;
    }
    if !digests.is_empty() {
        repository_blobs::Entity::delete_many()
            .filter(repository_blobs::Column::RepositoryId.eq(repository_id))
            .filter(repository_blobs::Column::BlobDigest.is_in(digests.clone()))
            .exec(c)
            .await?;
    }
    Ok(digests.len() as u64)
}

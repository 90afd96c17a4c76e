//! The gc-worker's side of the review queues: taking one due row under a lock,
//! re-checking whether its blob or manifest is still referenced, dropping or postponing the
//! row, and the lock the registry takes on a manifest's row before it tags, untags or
//! references that manifest. [`crate::gc`] is the writers' side (enqueueing).
//!
//! Locks: on PostgreSQL a worker takes its row with `FOR UPDATE SKIP LOCKED`, so any number
//! of workers (in any number of processes) each get a different row, and the registry's
//! `FOR UPDATE` on the same row waits for the worker (or the worker skips the row the
//! registry holds). On SQLite these clauses are not emitted: every write transaction
//! ([`crate::Db::begin_write`]) holds the database's one write lock from its first
//! statement to its end, so the worker's transaction *is* the single lease: nothing else
//! writes while a row is reviewed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::entity::{
    gc_blob_review_queue as blob_q, gc_manifest_review_queue as manifest_q, layers,
    manifest_references, manifests, tags,
};

/// Is any blob review due at `now`? A plain read, so an idle worker need not open a write
/// transaction (which on SQLite would take the database's write lock) to find nothing.
pub async fn blob_review_due(c: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool, DbErr> {
    Ok(blob_q::Entity::find()
        .filter(blob_q::Column::ReviewAfter.lte(now))
        .one(c)
        .await?
        .is_some())
}

/// Is any manifest review due at `now`? (See [`blob_review_due`].)
pub async fn manifest_review_due(
    c: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    Ok(manifest_q::Entity::find()
        .filter(manifest_q::Column::ReviewAfter.lte(now))
        .one(c)
        .await?
        .is_some())
}

/// Inside the worker's write transaction: the oldest due blob review, locked until the
/// transaction ends; rows other workers hold are skipped (PostgreSQL).
pub async fn take_blob_review(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Option<blob_q::Model>, DbErr> {
    blob_q::Entity::find()
        .filter(blob_q::Column::ReviewAfter.lte(now))
        .order_by_asc(blob_q::Column::ReviewAfter)
        .limit(1)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .one(txn)
        .await
}

/// Inside the worker's write transaction: the oldest due manifest review, locked until the
/// transaction ends; rows other workers (or a registry write) hold are skipped.
pub async fn take_manifest_review(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Option<manifest_q::Model>, DbErr> {
    manifest_q::Entity::find()
        .filter(manifest_q::Column::ReviewAfter.lte(now))
        .order_by_asc(manifest_q::Column::ReviewAfter)
        .limit(1)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .one(txn)
        .await
}

/// Does any manifest, in any repository, reference `digest` as a layer or as its config?
pub async fn blob_is_referenced(c: &impl ConnectionTrait, digest: &str) -> Result<bool, DbErr> {
    let layer = layers::Entity::find()
        .select_only()
        .column(layers::Column::Id)
        .filter(layers::Column::BlobDigest.eq(digest))
        .into_tuple::<i64>()
        .one(c)
        .await?;
    if layer.is_some() {
        return Ok(true);
    }
    Ok(manifests::Entity::find()
        .select_only()
        .column(manifests::Column::Id)
        .filter(manifests::Column::ConfigDigest.eq(digest))
        .into_tuple::<i64>()
        .one(c)
        .await?
        .is_some())
}

/// Why a manifest is kept, if it is: tagged, live through another manifest
/// ([`crate::liveness`]: a child of a live index, the subject or a referrer of live
/// content), or still referenced by an index (which must go first). `None` means dangling.
///
/// A referrer's liveness depends on its subject, whose row this review does not hold: the
/// subject's manifest row is locked first (`FOR UPDATE`), which waits for a tag being
/// added to it right now (the tag's foreign-key check holds a share lock on that row), so
/// the check below sees that tag. The worker holds the referrer's rows, then the
/// subject's; a tagging write takes only the subject's, so the two cannot deadlock.
pub async fn manifest_keeper(
    c: &impl ConnectionTrait,
    m: &manifests::Model,
) -> Result<Option<&'static str>, DbErr> {
    let tagged = tags::Entity::find()
        .filter(tags::Column::ManifestId.eq(m.id))
        .count(c)
        .await?;
    if tagged > 0 {
        return Ok(Some("tagged"));
    }
    let child = manifest_references::Entity::find()
        .filter(manifest_references::Column::ChildId.eq(m.id))
        .count(c)
        .await?;
    if child > 0 {
        return Ok(Some("child_of_index"));
    }
    if let Some(subject) = &m.subject_digest
        && let Some(s) = crate::manifests::find_by_digest(c, m.repository_id, subject).await?
    {
        lock_manifest_row(c, s.id).await?;
    }
    if crate::liveness::is_live(c, m).await? {
        return Ok(Some("live_through_related_manifest"));
    }
    Ok(None)
}

/// The manifest with id `id`, locked until the transaction ends (PostgreSQL `FOR UPDATE`).
/// Taking it waits for any transaction that is adding a tag, an index reference or a layer
/// to it (their foreign-key checks hold a share lock on this row), so the checks that follow
/// see what they committed.
pub async fn lock_manifest_row(
    c: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<manifests::Model>, DbErr> {
    manifests::Entity::find_by_id(id)
        .lock_exclusive()
        .one(c)
        .await
}

/// Registry side: inside a write transaction, before tagging, untagging, deleting or
/// referencing manifest `manifest_id`, lock its review row if there is one (PostgreSQL
/// `FOR UPDATE`, waiting for a worker reviewing it; nothing on SQLite, where the write
/// transaction already excludes the worker). The caller then re-reads the manifest: if a
/// worker deleted it meanwhile, it is gone now.
pub async fn lock_manifest_review(
    c: &impl ConnectionTrait,
    repository_id: i64,
    manifest_id: i64,
) -> Result<(), DbErr> {
    manifest_q::Entity::find()
        .filter(manifest_q::Column::RepositoryId.eq(repository_id))
        .filter(manifest_q::Column::ManifestId.eq(manifest_id))
        .lock_exclusive()
        .one(c)
        .await?;
    Ok(())
}

/// Drop a blob's review row.
pub async fn delete_blob_review(c: &impl ConnectionTrait, digest: &str) -> Result<(), DbErr> {
    blob_q::Entity::delete_by_id(digest.to_owned())
        .exec(c)
        .await?;
    Ok(())
}

/// Drop a manifest's review row.
pub async fn delete_manifest_review(
    c: &impl ConnectionTrait,
    repository_id: i64,
    manifest_id: i64,
) -> Result<(), DbErr> {
    manifest_q::Entity::delete_by_id((repository_id, manifest_id))
        .exec(c)
        .await?;
    Ok(())
}

/// Delete the blob row (its repository links go with it); returns its size if it existed.
pub async fn delete_blob_row(c: &impl ConnectionTrait, digest: &str) -> Result<Option<i64>, DbErr> {
    let Some(b) = crate::entity::blobs::Entity::find_by_id(digest.to_owned())
        .one(c)
        .await?
    else {
        return Ok(None);
    };
    crate::entity::blobs::Entity::delete_by_id(digest.to_owned())
        .exec(c)
        .await?;
    Ok(Some(b.size))
}

/// Postpone a blob review that failed to `until`, counting the failure. Does nothing when
/// someone already pushed the row later (a new upload or unlink) or it is gone.
pub async fn postpone_blob_review(
    c: &impl ConnectionTrait,
    digest: &str,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = blob_q::Entity::update_many()
        .col_expr(blob_q::Column::ReviewAfter, Expr::value(until))
        .col_expr(
            blob_q::Column::ReviewCount,
            Expr::col(blob_q::Column::ReviewCount).add(1),
        )
        .filter(blob_q::Column::Digest.eq(digest))
        .filter(blob_q::Column::ReviewAfter.lt(until))
        .exec(c)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Postpone a manifest review that failed (see [`postpone_blob_review`]).
pub async fn postpone_manifest_review(
    c: &impl ConnectionTrait,
    repository_id: i64,
    manifest_id: i64,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = manifest_q::Entity::update_many()
        .col_expr(manifest_q::Column::ReviewAfter, Expr::value(until))
        .col_expr(
            manifest_q::Column::ReviewCount,
            Expr::col(manifest_q::Column::ReviewCount).add(1),
        )
        .filter(manifest_q::Column::RepositoryId.eq(repository_id))
        .filter(manifest_q::Column::ManifestId.eq(manifest_id))
        .filter(manifest_q::Column::ReviewAfter.lt(until))
        .exec(c)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Rows in each queue and how many of them are overdue (`review_after` passed), as
/// `(blob rows, blob overdue, manifest rows, manifest overdue)`. Four `COUNT`s.
pub async fn queue_depths(
    c: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<(u64, u64, u64, u64), DbErr> {
    let blobs = blob_q::Entity::find().count(c).await?;
    let blobs_due = blob_q::Entity::find()
        .filter(blob_q::Column::ReviewAfter.lte(now))
        .count(c)
        .await?;
    let manifests = manifest_q::Entity::find().count(c).await?;
    let manifests_due = manifest_q::Entity::find()
        .filter(manifest_q::Column::ReviewAfter.lte(now))
        .count(c)
        .await?;
    Ok((blobs, blobs_due, manifests, manifests_due))
}

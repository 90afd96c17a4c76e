//! Queries of the offline consistency check (`berth-gc check`, read-only): pages of blobs,
//! blobs and manifests that no review row covers, queue health, stale upload sessions, and
//! who is hurt when a blob's bytes are missing.
//!
//! Every listing is a keyset page (`WHERE key > last ORDER BY key LIMIT n`), so the check
//! walks tables of any size in bounded memory; each page is one statement and sees one
//! snapshot.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Value,
};

use crate::entity::{
    blobs, gc_blob_review_queue as blob_q, gc_manifest_review_queue as manifest_q, uploads,
};
use crate::usage::statement;

/// A page of blob rows `(digest, size)` after `after`, by digest.
pub async fn blob_page(
    c: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<(String, i64)>, DbErr> {
    let mut q = blobs::Entity::find()
        .select_only()
        .column(blobs::Column::Digest)
        .column(blobs::Column::Size);
    if let Some(after) = after {
        q = q.filter(blobs::Column::Digest.gt(after));
    }
    q.order_by_asc(blobs::Column::Digest)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await
}

/// Which of `digests` have a blob row.
pub async fn blobs_present(
    c: &impl ConnectionTrait,
    digests: Vec<String>,
) -> Result<Vec<String>, DbErr> {
    if digests.is_empty() {
        return Ok(Vec::new());
    }
    blobs::Entity::find()
        .select_only()
        .column(blobs::Column::Digest)
        .filter(blobs::Column::Digest.is_in(digests))
        .into_tuple()
        .all(c)
        .await
}

/// One manifest that needs a missing blob, and a tag that reaches it (directly or through
/// an index), if any.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct BlobUser {
    /// Repository name.
    pub repository: String,
    /// The manifest's digest.
    pub manifest: String,
    /// A tag on that manifest, `None` for an untagged one.
    pub tag: Option<String>,
}

/// Every manifest that references `digest` as a layer or config, with the indexes that list
/// such manifests, and their tags: the images a missing blob breaks.
pub async fn blob_users(c: &impl ConnectionTrait, digest: &str) -> Result<Vec<BlobUser>, DbErr> {
    let sql = "WITH RECURSIVE direct(id) AS ( \
           SELECT manifest_id FROM layers WHERE blob_digest = ? \
           UNION SELECT id FROM manifests WHERE config_digest = ? \
         ), \
         up(id) AS ( \
           SELECT id FROM direct \
           UNION SELECT mr.parent_id FROM manifest_references mr JOIN up ON mr.child_id = up.id \
         ) \
         SELECT r.name AS repository, m.digest AS manifest, t.name AS tag \
         FROM up JOIN manifests m ON m.id = up.id \
         JOIN repositories r ON r.id = m.repository_id \
         LEFT JOIN tags t ON t.manifest_id = m.id \
         ORDER BY r.name, m.digest, t.name";
    let values: Vec<Value> = vec![digest.into(), digest.into()];
    BlobUser::find_by_statement(statement(c.get_database_backend(), sql, values))
        .all(c)
        .await
}

/// Delete the blob row `digest` (its repository links cascade) and its review row, but only
/// if no manifest references it; returns whether the row went. The foreign keys from
/// `layers` and `manifests.config_digest` (`RESTRICT`) back the `NOT EXISTS` up against a
/// manifest written concurrently.
pub async fn delete_unreferenced_blob(
    c: &impl ConnectionTrait,
    digest: &str,
) -> Result<bool, DbErr> {
    let sql = "DELETE FROM blobs WHERE digest = ? \
         AND NOT EXISTS (SELECT 1 FROM layers l WHERE l.blob_digest = blobs.digest) \
         AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.config_digest = blobs.digest)";
    let res = c
        .execute(statement(
            c.get_database_backend(),
            sql,
            vec![digest.into()],
        ))
        .await?;
    if res.rows_affected() > 0 {
        blob_q::Entity::delete_by_id(digest.to_owned())
            .exec(c)
            .await?;
        return Ok(true);
    }
    Ok(false)
}

#[derive(Debug, FromQueryResult)]
struct DigestRow {
    digest: String,
}

/// A page (by digest, after `after`) of blobs that no manifest references and no review row
/// covers: the online GC will never look at them.
pub async fn unqueued_blobs(
    c: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let sql = format!(
        "SELECT b.digest AS digest FROM blobs b \
         WHERE b.digest > ? \
         AND NOT EXISTS (SELECT 1 FROM gc_blob_review_queue q WHERE q.digest = b.digest) \
         AND NOT EXISTS (SELECT 1 FROM layers l WHERE l.blob_digest = b.digest) \
         AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.config_digest = b.digest) \
         ORDER BY b.digest LIMIT {limit}"
    );
    let values: Vec<Value> = vec![after.unwrap_or("").into()];
    Ok(
        DigestRow::find_by_statement(statement(c.get_database_backend(), &sql, values))
            .all(c)
            .await?
            .into_iter()
            .map(|r| r.digest)
            .collect(),
    )
}

/// A manifest the online GC would delete but will never look at.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct UnqueuedManifest {
    /// Manifest id (the page key).
    pub id: i64,
    /// Its repository's id.
    pub repository_id: i64,
    /// Its repository's name.
    pub repository: String,
    /// Its digest.
    pub digest: String,
}

/// A page (by id, after `after`) of manifests that are dangling (untagged, not
/// a child of an index, not the subject of a referrer) and have no review row.
pub async fn unqueued_manifests(
    c: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<UnqueuedManifest>, DbErr> {
    let sql = format!(
        "SELECT m.id AS id, m.repository_id AS repository_id, r.name AS repository, \
                m.digest AS digest \
         FROM manifests m JOIN repositories r ON r.id = m.repository_id \
         WHERE m.id > ? \
         AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id) \
         AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.child_id = m.id) \
         AND NOT EXISTS (SELECT 1 FROM manifests s \
                         WHERE s.repository_id = m.repository_id AND s.subject_digest = m.digest) \
         AND NOT EXISTS (SELECT 1 FROM gc_manifest_review_queue q \
                         WHERE q.repository_id = m.repository_id AND q.manifest_id = m.id) \
         ORDER BY m.id LIMIT {limit}"
    );
    UnqueuedManifest::find_by_statement(statement(
        c.get_database_backend(),
        &sql,
        vec![after.into()],
    ))
    .all(c)
    .await
}

/// Rows of one review queue that need attention: how many, and the first few.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueRows {
    /// Number of such rows.
    pub count: u64,
    /// Up to the requested sample size: `(key, review_after, review_count)`, where the key
    /// is the blob digest or `manifest <repository_id>/<manifest_id>`.
    pub sample: Vec<(String, DateTime<Utc>, i32)>,
}

/// Which queue rows to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFilter {
    /// `review_after` before this instant.
    DueBefore(DateTime<Utc>),
    /// `review_count` at least this.
    FailedAtLeast(i32),
}

/// The number of review rows of queue `E` matching `filter` and the first `sample` of them
/// by `review_after`.
async fn queue_rows<E: EntityTrait>(
    c: &impl ConnectionTrait,
    review_after: E::Column,
    review_count: E::Column,
    filter: QueueFilter,
    sample: u64,
) -> Result<(u64, Vec<E::Model>), DbErr>
where
    E::Model: Sync,
{
    let cond = match filter {
        QueueFilter::DueBefore(t) => review_after.lt(t),
        QueueFilter::FailedAtLeast(n) => review_count.gte(n),
    };
    let q = E::find().filter(cond);
    let count = q.clone().count(c).await?;
    let rows = q.order_by_asc(review_after).limit(sample).all(c).await?;
    Ok((count, rows))
}

/// Blob review rows matching `filter`.
pub async fn blob_queue_rows(
    c: &impl ConnectionTrait,
    filter: QueueFilter,
    sample: u64,
) -> Result<QueueRows, DbErr> {
    use blob_q::Column as Q;
    let (count, rows) =
        queue_rows::<blob_q::Entity>(c, Q::ReviewAfter, Q::ReviewCount, filter, sample).await?;
    Ok(QueueRows {
        count,
        sample: rows
            .into_iter()
            .map(|r| (r.digest, r.review_after, r.review_count))
            .collect(),
    })
}

/// Manifest review rows matching `filter`.
pub async fn manifest_queue_rows(
    c: &impl ConnectionTrait,
    filter: QueueFilter,
    sample: u64,
) -> Result<QueueRows, DbErr> {
    use manifest_q::Column as Q;
    let (count, rows) =
        queue_rows::<manifest_q::Entity>(c, Q::ReviewAfter, Q::ReviewCount, filter, sample).await?;
    Ok(QueueRows {
        count,
        sample: rows
            .into_iter()
            .map(|r| {
                (
                    format!("manifest {}/{}", r.repository_id, r.manifest_id),
                    r.review_after,
                    r.review_count,
                )
            })
            .collect(),
    })
}

/// A page (by id, after `after`) of upload sessions last touched before `cutoff`.
pub async fn stale_uploads(
    c: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    after: &str,
    limit: u64,
) -> Result<Vec<uploads::Model>, DbErr> {
    uploads::Entity::find()
        .filter(uploads::Column::UpdatedAt.lt(cutoff))
        .filter(uploads::Column::Id.gt(after))
        .order_by_asc(uploads::Column::Id)
        .limit(limit)
        .all(c)
        .await
}

/// Which of `ids` have an upload row.
pub async fn uploads_present(
    c: &impl ConnectionTrait,
    ids: Vec<String>,
) -> Result<Vec<String>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    uploads::Entity::find()
        .select_only()
        .column(uploads::Column::Id)
        .filter(uploads::Column::Id.is_in(ids))
        .into_tuple()
        .all(c)
        .await
}

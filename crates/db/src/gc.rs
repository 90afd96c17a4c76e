//! The online-GC review queues. Every write that may leave a blob or manifest unreferenced
//! enqueues it here in the same transaction, so no review is lost; the gc-worker reviews due rows.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};

use crate::entity::{gc_blob_review_queue as blob_q, gc_manifest_review_queue as manifest_q};

/// Why something was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A blob was uploaded (it may never be referenced).
    BlobUpload,
    /// A manifest was pushed by digest without a tag.
    ManifestUpload,
    /// A manifest was deleted: its config and layers.
    ManifestDelete,
    /// An index was deleted: its children.
    IndexDelete,
    /// A tag was deleted.
    TagDelete,
    /// A tag moved to another manifest: the previous one.
    TagSwitch,
    /// A blob's link to a repository was removed.
    BlobUnlink,
    /// A referrer was deleted: its subject, which it may have been keeping alive.
    ReferrerDelete,
    /// A manifest with referrers was deleted: the referrers, which lived as long as it did.
    SubjectDelete,
    /// `berth-gc check --repair` found it dangling with no review row.
    Check,
}

impl Event {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::BlobUpload => "blob_upload",
            Event::ManifestUpload => "manifest_upload",
            Event::ManifestDelete => "manifest_delete",
            Event::IndexDelete => "index_delete",
            Event::TagDelete => "tag_delete",
            Event::TagSwitch => "tag_switch",
            Event::BlobUnlink => "blob_unlink",
            Event::ReferrerDelete => "referrer_delete",
            Event::SubjectDelete => "subject_delete",
            Event::Check => "check",
        }
    }
}

/// Queue `digest` for review at `review_after`. A row already there is postponed to the new
/// time, never dropped: an insert racing a review cannot lose the review (GitLab's rule).
pub async fn enqueue_blob(
    c: &impl ConnectionTrait,
    digest: &str,
    event: Event,
    review_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = blob_q::ActiveModel {
        digest: Set(digest.to_owned()),
        review_after: Set(review_after),
        review_count: Set(0),
        event: Set(event.as_str().to_owned()),
        created_at: Set(now),
    };
    blob_q::Entity::insert(row)
        .on_conflict(
            OnConflict::column(blob_q::Column::Digest)
                .update_columns([blob_q::Column::ReviewAfter, blob_q::Column::Event])
                .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
    Ok(())
}

/// Queue a manifest of a repository for review at `review_after` (postponing an existing row).
pub async fn enqueue_manifest(
    c: &impl ConnectionTrait,
    repository_id: i64,
    manifest_id: i64,
    event: Event,
    review_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = manifest_q::ActiveModel {
        repository_id: Set(repository_id),
        manifest_id: Set(manifest_id),
        review_after: Set(review_after),
        review_count: Set(0),
        event: Set(event.as_str().to_owned()),
        created_at: Set(now),
    };
    manifest_q::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                manifest_q::Column::RepositoryId,
                manifest_q::Column::ManifestId,
            ])
            .update_columns([manifest_q::Column::ReviewAfter, manifest_q::Column::Event])
            .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
    Ok(())
}

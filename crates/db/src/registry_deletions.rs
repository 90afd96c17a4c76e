//! The content a registry deletion job removes, batch by batch: a repository's tags with
//! their digests (what bulk-delete rules judge), its manifests in a deletable order, and
//! its blob links, each queued for GC review. The jobs themselves live in
//! [`crate::background_jobs`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::entity::{manifest_references, manifests, repository_blobs, tags};
use crate::gc::{self, Event};

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

//! Queries on blobs and their links to repositories.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, JoinType, QueryFilter, QuerySelect,
    RelationDef, Set,
};

use crate::entity::{blobs, repository_blobs};

/// Size of `digest` if it is linked to repository `repository_id` (the only way a
/// repository may serve a blob: links are what make blob access follow repository access).
pub async fn linked_size(
    c: &impl ConnectionTrait,
    repository_id: i64,
    digest: &str,
) -> Result<Option<i64>, DbErr> {
    blobs::Entity::find()
        .select_only()
        .column(blobs::Column::Size)
        .join(JoinType::InnerJoin, link_relation())
        .filter(repository_blobs::Column::RepositoryId.eq(repository_id))
        .filter(blobs::Column::Digest.eq(digest))
        .into_tuple::<i64>()
        .one(c)
        .await
}

fn link_relation() -> RelationDef {
    blobs::Entity::belongs_to(repository_blobs::Entity)
        .from(blobs::Column::Digest)
        .to(repository_blobs::Column::BlobDigest)
        .into()
}

/// Which of `digests` are linked to the repository.
pub async fn linked_among(
    c: &impl ConnectionTrait,
    repository_id: i64,
    digests: Vec<String>,
) -> Result<Vec<String>, DbErr> {
    repository_blobs::Entity::find()
        .select_only()
        .column(repository_blobs::Column::BlobDigest)
        .filter(repository_blobs::Column::RepositoryId.eq(repository_id))
        .filter(repository_blobs::Column::BlobDigest.is_in(digests))
        .into_tuple::<String>()
        .all(c)
        .await
}

/// The blob row, wherever it is linked.
pub async fn find(c: &impl ConnectionTrait, digest: &str) -> Result<Option<blobs::Model>, DbErr> {
    blobs::Entity::find_by_id(digest.to_owned()).one(c).await
}

/// Record that the store holds `digest` (idempotent).
pub async fn insert(
    c: &impl ConnectionTrait,
    digest: &str,
    size: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = blobs::ActiveModel {
        digest: Set(digest.to_owned()),
        size: Set(size),
        created_at: Set(now),
    };
    blobs::Entity::insert(row)
        .on_conflict(
            OnConflict::column(blobs::Column::Digest)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
    Ok(())
}

/// Link `digest` to a repository (idempotent).
pub async fn link(
    c: &impl ConnectionTrait,
    repository_id: i64,
    digest: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = repository_blobs::ActiveModel {
        repository_id: Set(repository_id),
        blob_digest: Set(digest.to_owned()),
        created_at: Set(now),
    };
    repository_blobs::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                repository_blobs::Column::RepositoryId,
                repository_blobs::Column::BlobDigest,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
    Ok(())
}

/// Remove a blob's link to a repository; returns whether a link existed.
pub async fn unlink(
    c: &impl ConnectionTrait,
    repository_id: i64,
    digest: &str,
) -> Result<bool, DbErr> {
    let res = repository_blobs::Entity::delete_many()
        .filter(repository_blobs::Column::RepositoryId.eq(repository_id))
        .filter(repository_blobs::Column::BlobDigest.eq(digest))
        .exec(c)
        .await?;
    Ok(res.rows_affected > 0)
}

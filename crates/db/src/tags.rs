//! Queries on tags.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::tags::{self, Column, Entity};

/// The tag `name` of a repository.
pub async fn find(
    c: &impl ConnectionTrait,
    repository_id: i64,
    name: &str,
) -> Result<Option<tags::Model>, DbErr> {
    Entity::find()
        .filter(Column::RepositoryId.eq(repository_id))
        .filter(Column::Name.eq(name))
        .one(c)
        .await
}

/// Point `name` at `manifest_id`. Returns the manifest it pointed at before, if it moved.
pub async fn upsert(
    c: &impl ConnectionTrait,
    repository_id: i64,
    name: &str,
    manifest_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<i64>, DbErr> {
    match find(c, repository_id, name).await? {
        Some(t) if t.manifest_id == manifest_id => Ok(None),
        Some(t) => {
            Entity::update_many()
                .col_expr(Column::ManifestId, manifest_id.into())
                .col_expr(Column::UpdatedAt, now.into())
                .filter(Column::Id.eq(t.id))
                .exec(c)
                .await?;
            Ok(Some(t.manifest_id))
        }
        None => {
            let row = tags::ActiveModel {
                repository_id: Set(repository_id),
                name: Set(name.to_owned()),
                manifest_id: Set(manifest_id),
                created_at: Set(now),
                updated_at: Set(now),
                last_pulled_at: Set(None),
                pull_count: Set(0),
                ..Default::default()
            };
            Entity::insert(row).exec_without_returning(c).await?;
            Ok(None)
        }
    }
}

/// Tag names of a repository in lexical order after `last`, at most `n`.
pub async fn list_names(
    c: &impl ConnectionTrait,
    repository_id: i64,
    last: Option<&str>,
    n: u64,
) -> Result<Vec<String>, DbErr> {
    let mut q = Entity::find()
        .select_only()
        .column(Column::Name)
        .filter(Column::RepositoryId.eq(repository_id))
        .order_by_asc(Column::Name)
        .limit(n);
    if let Some(last) = last {
        q = q.filter(Column::Name.gt(last));
    }
    q.into_tuple::<String>().all(c).await
}

/// Tags pointing at a manifest.
pub async fn for_manifest(
    c: &impl ConnectionTrait,
    manifest_id: i64,
) -> Result<Vec<tags::Model>, DbErr> {
    Entity::find()
        .filter(Column::ManifestId.eq(manifest_id))
        .all(c)
        .await
}

/// Delete one tag; returns the row deleted.
pub async fn delete(
    c: &impl ConnectionTrait,
    repository_id: i64,
    name: &str,
) -> Result<Option<tags::Model>, DbErr> {
    let Some(t) = find(c, repository_id, name).await? else {
        return Ok(None);
    };
    Entity::delete_by_id(t.id).exec(c).await?;
    Ok(Some(t))
}

/// Delete tag `name` and queue the manifest it pointed at for GC review at `review_after`
/// (`TagDelete`): a manifest left untagged is reviewed later, never dropped here. Run it on
/// a write transaction the caller commits, so the delete and its queue row land together;
/// the caller may still refuse (an immutable tag) by not committing. Returns the row
/// deleted, `None` when there was no such tag (nothing written). The one place a tag
/// deletion is written, shared by the registry and the management API.
///
/// Before the tag goes, the manifest's GC review row is locked (a GC worker reviewing that
/// manifest finishes first; the race argument is in berth-gc's `worker` module); a
/// manifest the worker deleted meanwhile took the tag with it, so the tag is then not found.
pub async fn delete_and_queue(
    c: &impl ConnectionTrait,
    repository_id: i64,
    name: &str,
    review_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<tags::Model>, DbErr> {
    if let Some(t) = find(c, repository_id, name).await? {
        crate::gc_review::lock_manifest_review(c, repository_id, t.manifest_id).await?;
    }
    let Some(deleted) = delete(c, repository_id, name).await? else {
        return Ok(None);
    };
    crate::gc::enqueue_manifest(
        c,
        repository_id,
        deleted.manifest_id,
        crate::gc::Event::TagDelete,
        review_after,
        now,
    )
    .await?;
    Ok(Some(deleted))
}

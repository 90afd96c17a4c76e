//! Queries on upload sessions. The row is the session's identity and owner repository; the
//! bytes and their true length live in the blob store.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::entity::uploads::{self, Column, Entity};

/// Start a session opened by `created_by` (a token subject; `None` when unknown).
pub async fn create(
    c: &impl ConnectionTrait,
    id: &str,
    repository_id: i64,
    created_by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = uploads::ActiveModel {
        id: Set(id.to_owned()),
        repository_id: Set(repository_id),
        size: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        created_by: Set(created_by.map(str::to_owned)),
    };
    Entity::insert(row).exec_without_returning(c).await?;
    Ok(())
}

/// The session `id` if it belongs to the repository called `repository` (one query).
pub async fn find_in_repository(
    c: &impl ConnectionTrait,
    id: &str,
    repository: &str,
) -> Result<Option<uploads::Model>, DbErr> {
    use crate::entity::repositories;
    use sea_orm::{JoinType, QuerySelect};
    Entity::find_by_id(id.to_owned())
        .join(
            JoinType::InnerJoin,
            Entity::belongs_to(repositories::Entity)
                .from(Column::RepositoryId)
                .to(repositories::Column::Id)
                .into(),
        )
        .filter(repositories::Column::Name.eq(repository))
        .one(c)
        .await
}

/// Sessions of repository `repository_id` touched at or after `since`.
pub async fn count_recent_in_repository(
    c: &impl ConnectionTrait,
    repository_id: i64,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Entity::find()
        .filter(Column::RepositoryId.eq(repository_id))
        .filter(Column::UpdatedAt.gte(since))
        .count(c)
        .await
}

/// Sessions opened by `created_by` (in any repository) touched at or after `since`.
pub async fn count_recent_by_user(
    c: &impl ConnectionTrait,
    created_by: &str,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Entity::find()
        .filter(Column::CreatedBy.eq(created_by))
        .filter(Column::UpdatedAt.gte(since))
        .count(c)
        .await
}

/// Record the session's new size.
pub async fn set_size(
    c: &impl ConnectionTrait,
    id: &str,
    size: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Size, size.into())
        .col_expr(Column::UpdatedAt, now.into())
        .filter(Column::Id.eq(id))
        .exec(c)
        .await?;
    Ok(())
}

/// End the session.
pub async fn delete(c: &impl ConnectionTrait, id: &str) -> Result<bool, DbErr> {
    Ok(Entity::delete_by_id(id.to_owned())
        .exec(c)
        .await?
        .rows_affected
        > 0)
}

/// End the session `id` only if it has not been touched since `cutoff` (the expiry of
/// abandoned sessions must not end one a client resumed meanwhile).
pub async fn delete_if_untouched(
    c: &impl ConnectionTrait,
    id: &str,
    cutoff: DateTime<Utc>,
) -> Result<bool, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::Id.eq(id))
        .filter(Column::UpdatedAt.lt(cutoff))
        .exec(c)
        .await?
        .rows_affected
        > 0)
}

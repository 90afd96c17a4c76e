//! Queries on projects (owned by berth-auth; the registry only asks which exist, their ids
//! and whether their registry is disabled).

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use crate::entity::projects::{Column, Entity};

/// Does a project with this full path exist?
pub async fn exists(c: &impl ConnectionTrait, full_path: &str) -> Result<bool, DbErr> {
    Ok(Entity::find()
        .filter(Column::FullPath.eq(full_path))
        .count(c)
        .await?
        > 0)
}

/// The id and stored `container_registry_access_level` of the project with this full path,
/// `None` when there is no such project.
pub async fn registry_access_level(
    c: &impl ConnectionTrait,
    full_path: &str,
) -> Result<Option<(i64, String)>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::ContainerRegistryAccessLevel)
        .filter(Column::FullPath.eq(full_path))
        .into_tuple()
        .one(c)
        .await
}

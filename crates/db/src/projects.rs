//! Queries on projects (owned by berth-auth; the registry only asks which exist).

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use crate::entity::projects::{Column, Entity};

/// Does a project with this full path exist?
pub async fn exists(c: &impl ConnectionTrait, full_path: &str) -> Result<bool, DbErr> {
    Ok(Entity::find()
        .filter(Column::FullPath.eq(full_path))
        .count(c)
        .await?
        > 0)
}

//! Entity for the `projects` table.

use sea_orm::entity::prelude::*;

/// One row of `projects`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub namespace_id: i64,
    pub path: String,
    pub full_path: String,
    pub name: String,
    pub visibility: String,
    pub container_registry_access_level: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Cap on the deduplicated registry usage in bytes (m0007); `None`: no limit.
    pub registry_storage_limit: Option<i64>,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

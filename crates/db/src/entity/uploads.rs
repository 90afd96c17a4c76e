//! Entity for the `uploads` table.

use sea_orm::entity::prelude::*;

/// One row of `uploads`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub repository_id: i64,
    pub size: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Who opened the session (the token's subject), for the per-user cap.
    pub created_by: Option<String>,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

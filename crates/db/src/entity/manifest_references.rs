//! Entity for the `manifest_references` table.

use sea_orm::entity::prelude::*;

/// One row of `manifest_references`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "manifest_references")]
pub struct Model {
    pub repository_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub parent_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub child_id: i64,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

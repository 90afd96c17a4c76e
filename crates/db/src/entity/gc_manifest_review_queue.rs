//! Entity for the `gc_manifest_review_queue` table.

use sea_orm::entity::prelude::*;

/// One row of `gc_manifest_review_queue`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gc_manifest_review_queue")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub repository_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub manifest_id: i64,
    pub review_after: DateTimeUtc,
    pub review_count: i32,
    pub event: String,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! Entity for the `gc_blob_review_queue` table.

use sea_orm::entity::prelude::*;

/// One row of `gc_blob_review_queue`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gc_blob_review_queue")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub digest: String,
    pub review_after: DateTimeUtc,
    pub review_count: i32,
    pub event: String,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! Entity for the `members` table.

use sea_orm::entity::prelude::*;

/// One row of `members`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "members")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `namespace` or `project`.
    pub source_type: String,
    pub source_id: i64,
    pub user_id: i64,
    /// GitLab access level (10 Guest … 50 Owner).
    pub access_level: i32,
    pub expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

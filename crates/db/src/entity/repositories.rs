//! Entity for the `repositories` table.

use sea_orm::entity::prelude::*;

/// One row of `repositories`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "repositories")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub created_at: DateTimeUtc,
    pub last_pushed_at: Option<DateTimeUtc>,
    pub last_pulled_at: Option<DateTimeUtc>,
    pub pull_count: i64,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

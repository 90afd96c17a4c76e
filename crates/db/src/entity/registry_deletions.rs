//! Entity for the `registry_deletions` table.

use sea_orm::entity::prelude::*;

/// One row of `registry_deletions`: a request to delete a repository or some of its tags.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "registry_deletions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub repository_id: i64,
    pub repository_path: String,
    pub project_id: i64,
    pub kind: String,
    pub params: String,
    pub status: String,
    pub error: Option<String>,
    pub deleted_count: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

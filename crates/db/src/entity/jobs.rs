//! Entity for the `jobs` table.

use sea_orm::entity::prelude::*;

/// One background job: its kind and JSON payload, its state, attempts, lease and progress
/// (see [`crate::background_jobs`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub progress: i64,
    pub project_id: Option<i64>,
    pub repository_id: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub run_after: DateTimeUtc,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

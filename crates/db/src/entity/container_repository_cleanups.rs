//! Entity for the `container_repository_cleanups` table (m0009).

use sea_orm::entity::prelude::*;

/// One row of `container_repository_cleanups`: a repository's cleanup-policy state.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "container_repository_cleanups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub repository_id: i64,
    pub expiration_policy_cleanup_status: String,
    pub expiration_policy_started_at: Option<DateTimeUtc>,
    pub expiration_policy_completed_at: Option<DateTimeUtc>,
    pub last_cleanup_deleted_tags_count: Option<i64>,
    pub run_deleted_tags_count: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

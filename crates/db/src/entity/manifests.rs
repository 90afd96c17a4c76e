//! Entity for the `manifests` table.

use sea_orm::entity::prelude::*;

/// One row of `manifests`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "manifests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub repository_id: i64,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject_digest: Option<String>,
    pub config_digest: Option<String>,
    pub payload: Vec<u8>,
    pub size: i64,
    pub created_at: DateTimeUtc,
    pub last_pulled_at: Option<DateTimeUtc>,
    pub pull_count: i64,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

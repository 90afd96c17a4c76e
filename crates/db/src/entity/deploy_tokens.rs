//! Entity for the `deploy_tokens` table.

use sea_orm::entity::prelude::*;

/// One row of `deploy_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deploy_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: Option<i64>,
    pub namespace_id: Option<i64>,
    pub name: String,
    pub username: String,
    /// SHA-256 hex of the secret.
    pub token_digest: String,
    pub scopes: String,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked: bool,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

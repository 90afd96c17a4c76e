//! Entity for the `personal_access_tokens` table.

use sea_orm::entity::prelude::*;

/// One row of `personal_access_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "personal_access_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// SHA-256 hex of the secret; the secret itself is never stored.
    pub token_digest: String,
    /// Comma-separated scopes.
    pub scopes: String,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked: bool,
    pub last_used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

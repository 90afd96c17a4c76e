//! Entity for the `refresh_tokens` table.

use sea_orm::entity::prelude::*;

/// One row of `refresh_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    /// SHA-256 hex of the refresh token.
    pub token_digest: String,
    pub service: String,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked: bool,
    /// The PAT the login used (`None`: a password login).
    pub personal_access_token_id: Option<i64>,
    /// The scopes that PAT had, comma-separated (empty for a password login).
    pub scopes: String,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

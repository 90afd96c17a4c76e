//! Entity for the `oauth_access_tokens` table.

use sea_orm::entity::prelude::*;

/// One row of `oauth_access_tokens`: an API token from `POST /oauth/token`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_access_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    /// SHA-256 hex of the access token.
    pub token_digest: String,
    /// SHA-256 hex of its refresh token.
    pub refresh_digest: String,
    /// Comma-separated scopes.
    pub scopes: String,
    pub expires_at: DateTimeUtc,
    pub revoked: bool,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! API sign-in tokens from `POST /oauth/token` (GitLab's OAuth2 password grant), and the
//! credential a registry refresh token stands for, so a refresh never grants more than the
//! login that produced it (a PAT's scopes, and nothing once that PAT is revoked).

use sea_orm_migration::prelude::*;

/// Adds `oauth_access_tokens` and the refresh tokens' credential columns.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_api_tokens"
    }
}

#[derive(Iden)]
enum OauthAccessTokens {
    Table,
    Id,
    UserId,
    TokenDigest,
    RefreshDigest,
    Scopes,
    ExpiresAt,
    Revoked,
    CreatedAt,
}

#[derive(Iden)]
enum RefreshTokens {
    Table,
    PersonalAccessTokenId,
    Scopes,
}

#[derive(Iden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OauthAccessTokens::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(OauthAccessTokens::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(OauthAccessTokens::UserId)
                        .big_integer()
                        .not_null(),
                )
                // SHA-256 hex of the access token and of its refresh token.
                .col(
                    ColumnDef::new(OauthAccessTokens::TokenDigest)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(OauthAccessTokens::RefreshDigest)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(OauthAccessTokens::Scopes)
                        .string_len(255)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(OauthAccessTokens::ExpiresAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(OauthAccessTokens::Revoked)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .col(
                    ColumnDef::new(OauthAccessTokens::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(OauthAccessTokens::Table, OauthAccessTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // SQLite adds one column per ALTER TABLE statement.
        m.alter_table(
            Table::alter()
                .table(RefreshTokens::Table)
                .add_column(
                    ColumnDef::new(RefreshTokens::PersonalAccessTokenId)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RefreshTokens::Table)
                .add_column(
                    ColumnDef::new(RefreshTokens::Scopes)
                        .string_len(255)
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [RefreshTokens::Scopes, RefreshTokens::PersonalAccessTokenId] {
            m.alter_table(
                Table::alter()
                    .table(RefreshTokens::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        m.drop_table(
            Table::drop()
                .table(OauthAccessTokens::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

//! Caps on open upload sessions: each session records who opened it (`created_by`, the
//! token's subject), and two indexes let the registry count a repository's and a user's
//! recently touched sessions without reading the whole table.

use sea_orm_migration::prelude::*;

/// Adds `uploads.created_by`, `idx_uploads_repository_updated` and
/// `idx_uploads_created_by_updated`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_h2_upload_caps"
    }
}

#[derive(Iden)]
enum Uploads {
    Table,
    RepositoryId,
    CreatedBy,
    UpdatedAt,
}

const BY_REPOSITORY: &str = "idx_uploads_repository_updated";
const BY_USER: &str = "idx_uploads_created_by_updated";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Uploads::Table)
                .add_column(ColumnDef::new(Uploads::CreatedBy).string_len(255).null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name(BY_REPOSITORY)
                .table(Uploads::Table)
                .col(Uploads::RepositoryId)
                .col(Uploads::UpdatedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name(BY_USER)
                .table(Uploads::Table)
                .col(Uploads::CreatedBy)
                .col(Uploads::UpdatedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in [BY_USER, BY_REPOSITORY] {
            m.drop_index(Index::drop().name(name).table(Uploads::Table).to_owned())
                .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Uploads::Table)
                .drop_column(Uploads::CreatedBy)
                .to_owned(),
        )
        .await
    }
}

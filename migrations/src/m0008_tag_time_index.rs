//! Tag pages by push time: an index on `tags (repository_id, updated_at, name)`, so listing
//! a repository's tags by `created_at` (the `updated_at` column) with the name as
//! tie-breaker, in either direction, reads the page from the index instead of sorting every
//! tag of the repository (a middle page of 10,000 tags took ~20 ms on SQLite without it).

use sea_orm_migration::prelude::*;

/// Adds `idx_tags_repository_updated`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_tag_time_index"
    }
}

#[derive(Iden)]
enum Tags {
    Table,
    RepositoryId,
    UpdatedAt,
    Name,
}

const INDEX: &str = "idx_tags_repository_updated";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .if_not_exists()
                .name(INDEX)
                .table(Tags::Table)
                .col(Tags::RepositoryId)
                .col(Tags::UpdatedAt)
                .col(Tags::Name)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(INDEX).table(Tags::Table).to_owned())
            .await
    }
}

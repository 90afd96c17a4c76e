//! Asynchronous registry deletions: a queue of requests to delete a whole repository or a
//! set of its tags (GitLab's bulk tag delete), run by berth-auth's deletion worker with a
//! lease so several replicas never run the same request, and kept afterwards as the
//! visible status of each request.

use sea_orm_migration::prelude::*;

/// Adds `registry_deletions`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_registry_deletions"
    }
}

#[derive(Iden)]
enum RegistryDeletions {
    Table,
    Id,
    RepositoryId,
    RepositoryPath,
    ProjectId,
    Kind,
    Params,
    Status,
    Error,
    DeletedCount,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use RegistryDeletions as D;
        let ts = |c: D| {
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .null()
                .to_owned()
        };
        // No foreign keys: a request outlives the repository it deleted (its status stays
        // readable) and the project (deleting a project schedules its repositories).
        m.create_table(
            Table::create()
                .table(D::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(D::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(D::RepositoryId).big_integer().not_null())
                .col(ColumnDef::new(D::RepositoryPath).string_len(255).not_null())
                .col(ColumnDef::new(D::ProjectId).big_integer().not_null())
                // 'repository' | 'tags'
                .col(ColumnDef::new(D::Kind).string_len(16).not_null())
                // The bulk-delete rules as JSON text ('{}' for a repository).
                .col(ColumnDef::new(D::Params).text().not_null())
                // 'scheduled' | 'running' | 'done' | 'failed'
                .col(ColumnDef::new(D::Status).string_len(16).not_null())
                .col(ColumnDef::new(D::Error).text().null())
                .col(
                    ColumnDef::new(D::DeletedCount)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(ColumnDef::new(D::LeaseOwner).string_len(64).null())
                .col(ts(D::LeaseUntil))
                .col(
                    ColumnDef::new(D::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ts(D::StartedAt))
                .col(ts(D::FinishedAt))
                .to_owned(),
        )
        .await?;
        // The worker looks for unfinished requests; the API lists a repository's requests.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_registry_deletions_status")
                .table(D::Table)
                .col(D::Status)
                .col(D::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_registry_deletions_repository")
                .table(D::Table)
                .col(D::RepositoryId)
                .col(D::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(RegistryDeletions::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

//! Cleanup-policy state per repository (GitLab keeps it on `container_repositories`): the
//! status of the policy's run (`expiration_policy_cleanup_status`), when the run started
//! (`expiration_policy_started_at`, also the instant the whole run judges tags at, so a run
//! resumed in slices decides consistently), when it last completed, the tags it deleted,
//! and a lease so two gc-workers never run one repository at once. One row per repository
//! that a policy has touched; no row reads as `cleanup_unscheduled`.

use sea_orm_migration::prelude::*;

/// Adds `container_repository_cleanups`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_repository_cleanups"
    }
}

#[derive(Iden)]
enum ContainerRepositoryCleanups {
    Table,
    RepositoryId,
    ExpirationPolicyCleanupStatus,
    ExpirationPolicyStartedAt,
    ExpirationPolicyCompletedAt,
    LastCleanupDeletedTagsCount,
    RunDeletedTagsCount,
    LeaseOwner,
    LeaseUntil,
    UpdatedAt,
}

#[derive(Iden)]
enum Repositories {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ContainerRepositoryCleanups as C;
        let ts = |c: C| {
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .null()
                .to_owned()
        };
        m.create_table(
            Table::create()
                .table(C::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(C::RepositoryId)
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                // cleanup_unscheduled | cleanup_scheduled | cleanup_unfinished | cleanup_ongoing
                .col(
                    ColumnDef::new(C::ExpirationPolicyCleanupStatus)
                        .string_len(32)
                        .not_null(),
                )
                .col(ts(C::ExpirationPolicyStartedAt))
                .col(ts(C::ExpirationPolicyCompletedAt))
                .col(
                    ColumnDef::new(C::LastCleanupDeletedTagsCount)
                        .big_integer()
                        .null(),
                )
                .col(
                    ColumnDef::new(C::RunDeletedTagsCount)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(ColumnDef::new(C::LeaseOwner).string_len(64).null())
                .col(ts(C::LeaseUntil))
                .col(
                    ColumnDef::new(C::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(C::Table, C::RepositoryId)
                        .to(Repositories::Table, Repositories::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The scheduler looks for scheduled and unfinished runs.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_container_repository_cleanups_status")
                .table(C::Table)
                .col(C::ExpirationPolicyCleanupStatus)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(ContainerRepositoryCleanups::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

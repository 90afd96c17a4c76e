//! Cleanup policies (GitLab's container expiration policies): at most one per project,
//! with its schedule (`next_run_at`) for the worker that runs them.

use sea_orm_migration::prelude::*;

/// Adds `container_expiration_policies`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_expiration_policies"
    }
}

#[derive(Iden)]
enum ContainerExpirationPolicies {
    Table,
    ProjectId,
    Cadence,
    Enabled,
    KeepN,
    OlderThan,
    NameRegex,
    NameRegexKeep,
    NextRunAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden)]
enum Projects {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ContainerExpirationPolicies as P;
        m.create_table(
            Table::create()
                .table(P::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(P::ProjectId)
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(P::Cadence).string_len(12).not_null())
                .col(ColumnDef::new(P::Enabled).boolean().not_null())
                .col(ColumnDef::new(P::KeepN).integer().null())
                .col(ColumnDef::new(P::OlderThan).string_len(12).null())
                // GitLab caps both regexes at 255 characters.
                .col(ColumnDef::new(P::NameRegex).string_len(255).null())
                .col(ColumnDef::new(P::NameRegexKeep).string_len(255).null())
                .col(
                    ColumnDef::new(P::NextRunAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(P::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(P::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(P::Table, P::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The scheduler asks for enabled policies that are due.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_container_expiration_policies_due")
                .table(P::Table)
                .col(P::Enabled)
                .col(P::NextRunAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(ContainerExpirationPolicies::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

//! Immutable tag rules: per-project RE2-style patterns over tag names. A tag that exists
//! and matches one cannot be overwritten or deleted (the registry enforces it from the
//! patterns auth puts in the JWT).

use sea_orm_migration::prelude::*;

/// Adds `tag_immutability_rules`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_tag_immutability"
    }
}

#[derive(Iden)]
enum TagImmutabilityRules {
    Table,
    Id,
    ProjectId,
    TagNamePattern,
    CreatedAt,
}

#[derive(Iden)]
enum Projects {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TagImmutabilityRules::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(TagImmutabilityRules::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(TagImmutabilityRules::ProjectId)
                        .big_integer()
                        .not_null(),
                )
                // GitLab caps a tag pattern at 100 characters.
                .col(
                    ColumnDef::new(TagImmutabilityRules::TagNamePattern)
                        .string_len(100)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(TagImmutabilityRules::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(TagImmutabilityRules::Table, TagImmutabilityRules::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // Every token for a repository scope reads its project's rules.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_tag_immutability_rules_project")
                .table(TagImmutabilityRules::Table)
                .col(TagImmutabilityRules::ProjectId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(TagImmutabilityRules::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

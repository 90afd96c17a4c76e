//! Storage limits: an optional cap in bytes on a project's and on a root
//! namespace's deduplicated registry usage. NULL means no limit.

use sea_orm_migration::prelude::*;

/// Adds `registry_storage_limit` to `namespaces` and `projects`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_storage_limits"
    }
}

#[derive(Iden)]
enum Namespaces {
    Table,
    RegistryStorageLimit,
}

#[derive(Iden)]
enum Projects {
    Table,
    RegistryStorageLimit,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        m.alter_table(
            Table::alter()
                .table(Namespaces::Table)
                .add_column(
                    ColumnDef::new(Namespaces::RegistryStorageLimit)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .add_column(
                    ColumnDef::new(Projects::RegistryStorageLimit)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .drop_column(Projects::RegistryStorageLimit)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Namespaces::Table)
                .drop_column(Namespaces::RegistryStorageLimit)
                .to_owned(),
        )
        .await
    }
}

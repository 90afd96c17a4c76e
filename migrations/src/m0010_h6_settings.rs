//! Instance-wide settings the processes share through the database, one row per name. The
//! first is `gc_review_delay`: berth-gc records its configured delay here and the registry
//! and berth-auth follow it, so the three no longer hold copies that must agree.

use sea_orm_migration::prelude::*;

/// Adds `settings`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_h6_settings"
    }
}

#[derive(Iden)]
enum Settings {
    Table,
    Name,
    Value,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Settings::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Settings::Name)
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Settings::Value).text().not_null())
                .col(
                    ColumnDef::new(Settings::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Settings::Table).to_owned())
            .await
    }
}

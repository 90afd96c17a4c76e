//! Berth's schema history (sea-orm migrations), one set for SQLite and PostgreSQL.
//! Frozen history: a migration, once released, never changes and imports nothing internal.

pub use sea_orm_migration::prelude::*;

mod m0001_registry;
mod m0002_identity;
mod m0003_api_tokens;
mod m0004_tag_immutability;
mod m0005_expiration_policies;
mod m0006_registry_deletions;
mod m0007_storage_limits;
mod m0008_tag_time_index;
mod m0009_repository_cleanups;
mod m0010_h2_upload_caps;
mod m0010_h5_jobs;
mod m0010_h6_settings;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_registry::Migration),
            Box::new(m0002_identity::Migration),
            Box::new(m0003_api_tokens::Migration),
            Box::new(m0004_tag_immutability::Migration),
            Box::new(m0005_expiration_policies::Migration),
            Box::new(m0006_registry_deletions::Migration),
            Box::new(m0007_storage_limits::Migration),
            Box::new(m0008_tag_time_index::Migration),
            Box::new(m0009_repository_cleanups::Migration),
            Box::new(m0010_h6_settings::Migration),
            Box::new(m0010_h2_upload_caps::Migration),
            Box::new(m0010_h5_jobs::Migration),
        ]
    }
}

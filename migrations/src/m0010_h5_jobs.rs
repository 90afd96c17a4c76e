//! Background jobs: one `jobs` table that berth-gc replicas claim rows of (with a lease)
//! and berth-auth only inserts into. It replaces `registry_deletions`, whose rows become
//! jobs (same ids, so links to a request keep working): kind `repository` → `delete_repository`,
//! `tags` → `delete_tags` (the rules move into the JSON payload), status `scheduled` →
//! `queued`, `done` → `succeeded`, `running`/`failed` unchanged.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

/// Adds `jobs`, moves `registry_deletions` into it and drops that table.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_h5_jobs"
    }
}

#[derive(Iden)]
enum Jobs {
    Table,
    Id,
    Kind,
    Payload,
    State,
    Attempts,
    Progress,
    ProjectId,
    RepositoryId,
    LeaseOwner,
    LeaseUntil,
    RunAfter,
    LastError,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
}

/// The rows of `registry_deletions` as jobs. `{payload}` is the backend's JSON builder over
/// the old columns.
const COPY: &str = "INSERT INTO jobs (id, kind, payload, state, attempts, progress, project_id, \
     repository_id, lease_owner, lease_until, run_after, last_error, created_at, updated_at, \
     started_at, finished_at) \
     SELECT id, CASE kind WHEN 'tags' THEN 'delete_tags' ELSE 'delete_repository' END, {payload}, \
     CASE status WHEN 'scheduled' THEN 'queued' WHEN 'done' THEN 'succeeded' ELSE status END, \
     CASE WHEN started_at IS NULL THEN 0 ELSE 1 END, deleted_count, project_id, repository_id, \
     lease_owner, lease_until, created_at, error, created_at, \
     COALESCE(finished_at, started_at, created_at), started_at, finished_at \
     FROM registry_deletions";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let ts = |c: Jobs| {
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .null()
                .to_owned()
        };
        let ts_required = |c: Jobs| {
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .not_null()
                .to_owned()
        };
        // No foreign keys: a deletion job outlives the repository it deleted (its status stays
        // readable) and the project or user whose deletion enqueued it.
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Jobs::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                // 'delete_repository' | 'delete_tags'
                .col(ColumnDef::new(Jobs::Kind).string_len(40).not_null())
                // The kind's parameters as JSON text.
                .col(ColumnDef::new(Jobs::Payload).text().not_null())
                // 'queued' | 'running' | 'succeeded' | 'failed'
                .col(ColumnDef::new(Jobs::State).string_len(16).not_null())
                .col(
                    ColumnDef::new(Jobs::Attempts)
                        .integer()
                        .not_null()
                        .default(0),
                )
                // Items done so far (tags a deletion removed).
                .col(
                    ColumnDef::new(Jobs::Progress)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                // What the job is about, for listings and for running one repository's jobs
                // in order (copies of payload fields, which SQL cannot index portably).
                .col(ColumnDef::new(Jobs::ProjectId).big_integer().null())
                .col(ColumnDef::new(Jobs::RepositoryId).big_integer().null())
                .col(ColumnDef::new(Jobs::LeaseOwner).string_len(64).null())
                .col(ts(Jobs::LeaseUntil))
                .col(ts_required(Jobs::RunAfter))
                .col(ColumnDef::new(Jobs::LastError).text().null())
                .col(ts_required(Jobs::CreatedAt))
                .col(ts_required(Jobs::UpdatedAt))
                .col(ts(Jobs::StartedAt))
                .col(ts(Jobs::FinishedAt))
                .to_owned(),
        )
        .await?;
        // Workers look for unfinished jobs; the API lists a repository's or a project's.
        for (name, cols) in [
            ("idx_jobs_state", [Jobs::State, Jobs::Id]),
            ("idx_jobs_repository", [Jobs::RepositoryId, Jobs::Id]),
            ("idx_jobs_project", [Jobs::ProjectId, Jobs::Id]),
        ] {
            let mut idx = Index::create();
            idx.if_not_exists().name(name).table(Jobs::Table);
            for c in cols {
                idx.col(c);
            }
            m.create_index(idx.to_owned()).await?;
        }

        let db = m.get_connection();
        let backend = db.get_database_backend();
        let payload = match backend {
            DatabaseBackend::Postgres => {
                "CASE kind WHEN 'tags' THEN json_build_object('repository_id', repository_id, \
                 'repository_path', repository_path, 'project_id', project_id, 'rules', \
                 params::json)::text ELSE json_build_object('repository_id', repository_id, \
                 'repository_path', repository_path, 'project_id', project_id)::text END"
            }
            _ => {
                "CASE kind WHEN 'tags' THEN json_object('repository_id', repository_id, \
                 'repository_path', repository_path, 'project_id', project_id, 'rules', \
                 json(params)) ELSE json_object('repository_id', repository_id, \
                 'repository_path', repository_path, 'project_id', project_id) END"
            }
        };
        db.execute_unprepared(&COPY.replace("{payload}", payload))
            .await?;
        if backend == DatabaseBackend::Postgres {
            // Ids were copied: the sequence continues after the highest.
            db.execute_unprepared(
                "SELECT setval(pg_get_serial_sequence('jobs', 'id'), \
                 COALESCE((SELECT MAX(id) FROM jobs), 0) + 1, false)",
            )
            .await?;
        }
        m.drop_table(
            Table::drop()
                .table(Alias::new("registry_deletions"))
                .if_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Back to an empty `registry_deletions` (the job history is dropped with `jobs`).
        super::m0006_registry_deletions::Migration.up(m).await?;
        m.drop_table(Table::drop().table(Jobs::Table).if_exists().to_owned())
            .await
    }
}

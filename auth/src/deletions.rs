//! The deletion service: what the API's asynchronous deletions write. berth-auth runs no
//! deletion itself; it enqueues typed jobs (`delete_repository`, `delete_tags`) in the
//! `jobs` table, in the same write transaction that re-checks the request against the
//! database, and berth-gc's job workers do the work. Deleting a project, or a user (their
//! personal namespace's projects), enqueues a `delete_repository` job per repository in the
//! transaction that deletes the project or user, so nothing is left behind that no one can
//! reach and the path can be used again once the jobs ran.

use berth_core::jobs::{BulkRules, JobPayload, RepositoryTarget};
use berth_db::Db;
use berth_db::background_jobs as jobs;
use berth_db::entity::jobs::Model as Job;
use berth_db::entity::{projects, repositories};
use berth_db::registry_read as q;
use berth_db::sea_orm::{ConnectionTrait, DbErr};
use chrono::Utc;

/// On `c` (a write transaction the caller commits): enqueue the deletion of `repository`
/// (owned by `project_id` if any), unless one is already queued or running; returns the job.
pub async fn enqueue_repository_deletion(
    c: &impl ConnectionTrait,
    project_id: Option<i64>,
    repository: &repositories::Model,
) -> Result<Job, DbErr> {
    if let Some(existing) = jobs::pending_repository_deletion(c, repository.id).await? {
        return Ok(existing);
    }
    let payload = JobPayload::DeleteRepository(target(project_id, repository));
    jobs::enqueue(c, &payload, Utc::now()).await
}

fn target(project_id: Option<i64>, repository: &repositories::Model) -> RepositoryTarget {
    RepositoryTarget {
        repository_id: repository.id,
        repository_path: repository.name.clone(),
        project_id,
    }
}

/// Schedule the deletion of repository `repository_id` of `project`. `None` when the
/// repository is gone by the time the transaction looks (deleted meanwhile).
pub async fn delete_repository(
    db: &Db,
    project: &projects::Model,
    repository_id: i64,
) -> Result<Option<Job>, DbErr> {
    let txn = db.begin_write().await?;
    let Some(r) = q::repository(&txn, repository_id).await? else {
        return Ok(None);
    };
    let job = enqueue_repository_deletion(&txn, Some(project.id), &r).await?;
    txn.commit().await?;
    Ok(Some(job))
}

/// Schedule a bulk tag deletion with `rules` (already validated) in repository
/// `repository_id` of `project`. `None` when the repository is gone.
pub async fn delete_tags(
    db: &Db,
    project: &projects::Model,
    repository_id: i64,
    rules: BulkRules,
) -> Result<Option<Job>, DbErr> {
    let txn = db.begin_write().await?;
    let Some(r) = q::repository(&txn, repository_id).await? else {
        return Ok(None);
    };
    let payload = JobPayload::DeleteTags {
        target: target(Some(project.id), &r),
        rules,
    };
    let job = jobs::enqueue(&txn, &payload, Utc::now()).await?;
    txn.commit().await?;
    Ok(Some(job))
}

/// On `c`: enqueue the deletion of every repository under namespace `path`, each attributed to the project owning it (the longest project
/// path it lies under, as the registry decides). Returns how many were enqueued.
async fn enqueue_under(c: &impl ConnectionTrait, path: &str) -> Result<usize, DbErr> {
    let repositories = q::repositories_under(c, path).await?;
    if repositories.is_empty() {
        return Ok(0);
    }
    let projects = q::projects_under(c, path).await?;
    let paths: Vec<&str> = projects.iter().map(|p| p.full_path.as_str()).collect();
    for r in &repositories {
        let owner = q::owner_of(&r.name, &paths).map(|i| projects[i].id);
        enqueue_repository_deletion(c, owner, r).await?;
    }
    Ok(repositories.len())
}

/// Delete `project` and schedule the deletion of its repositories (not those of projects
/// nested below it), in one transaction. Returns how many repositories were scheduled.
pub async fn delete_project(db: &Db, project: &projects::Model) -> Result<usize, DbErr> {
    let txn = db.begin_write().await?;
    let nested = q::projects_under(&txn, &project.full_path).await?;
    let mut paths = vec![project.full_path.as_str()];
    paths.extend(nested.iter().map(|p| p.full_path.as_str()));
    let mut scheduled = 0;
    for r in q::repositories_under(&txn, &project.full_path).await? {
        if q::owner_of(&r.name, &paths) == Some(0) {
            enqueue_repository_deletion(&txn, Some(project.id), &r).await?;
            scheduled += 1;
        }
    }
    berth_db::project_admin::delete(&txn, project).await?;
    txn.commit().await?;
    Ok(scheduled)
}

/// Delete user `user_id` (with their personal namespace's projects) and schedule the
/// deletion of every repository under that namespace, in one transaction. Returns how
/// many repositories were scheduled.
pub async fn delete_user(db: &Db, user_id: i64) -> Result<usize, DbErr> {
    let txn = db.begin_write().await?;
    let scheduled = match berth_db::namespaces::personal(&txn, user_id).await? {
        Some(ns) => enqueue_under(&txn, &ns.full_path).await?,
        None => 0,
    };
    berth_db::users::delete(&txn, user_id).await?;
    txn.commit().await?;
    Ok(scheduled)
}

//! Asynchronous registry deletions (GitLab's API, answered 202): deleting a repository
//! (`DELETE /projects/:id/registry/repositories/:repository_id`) and bulk-deleting its tags
//! (`DELETE …/tags` with `name_regex_delete`, `name_regex_keep`, `keep_n`, `older_than`),
//! both Maintainer+ (GitLab's `admin_container_image`) and answered `202` once
//! [`crate::deletions`] has enqueued a job; berth-gc's job workers do the work. Instead of
//! GitLab's once-an-hour limit, requests for one repository run one after another, in
//! bounded batches.
//!
//! Beyond GitLab, each request's progress is visible: `GET /projects/:id/registry/deletions`
//! (optionally `repository_id`), `GET /projects/:id/registry/deletions/:deletion_id` and
//! `GET /projects/:id/registry/repositories/:repository_id/deletions`, with `status`
//! (`scheduled`, `running`, `done`, `failed`), `error`, `deleted_count`, `attempts` and
//! timestamps. These are the job's fields under the names this API has always used (a job
//! `queued` shows as `scheduled`, `succeeded` as `done`; kind `delete_repository` as
//! `repository`, `delete_tags` as `tags`), so clients of the API are unaffected by where
//! the work runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use berth_core::access::Role;
use berth_core::jobs::{BulkRules, JobKind, JobPayload, JobState};
use berth_db::background_jobs::{self as q, JobRow};
use berth_db::entity::{jobs::Model as Deletion, projects};
use serde_json::{Value, json};

use super::caller::{Caller, MaybeCaller};
use super::error::{ApiError, ApiResult};
use super::params::{Params, opt_time, time};
use super::registry::{RegistryNeed, project_repository, registry_project, registry_project_for};
use crate::state::AppState;

/// How many requests a listing shows (newest first).
const LISTED: u64 = 50;

/// Deletion routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{id}/registry/repositories/{repository_id}",
            delete(delete_repository),
        )
        .route(
            "/projects/{id}/registry/repositories/{repository_id}/tags",
            delete(delete_tags),
        )
        .route(
            "/projects/{id}/registry/repositories/{repository_id}/deletions",
            get(list_repository_deletions),
        )
        .route("/projects/{id}/registry/deletions", get(list_deletions))
        .route(
            "/projects/{id}/registry/deletions/{deletion_id}",
            get(get_deletion),
        )
}

/// A deletion job as the API shows it.
pub fn deletion_json(d: &Deletion) -> Value {
    let kind = d.job_kind();
    let payload = kind.and_then(|k| JobPayload::parse(k, &d.payload).ok());
    let params = match &payload {
        Some(JobPayload::DeleteTags { rules, .. }) => json!(rules),
        Some(JobPayload::DeleteRepository(_)) => json!({}),
        None => Value::Null,
    };
    json!({
        "id": d.id,
        "repository_id": d.repository_id,
        "repository_path": payload.as_ref().map(|p| p.target().repository_path.clone()),
        "project_id": d.project_id,
        "kind": match kind {
            Some(JobKind::DeleteRepository) => "repository",
            Some(JobKind::DeleteTags) => "tags",
            None => d.kind.as_str(),
        },
        "params": params,
        "status": match d.job_state() {
            Some(JobState::Queued) => "scheduled",
            Some(JobState::Running) => "running",
            Some(JobState::Succeeded) => "done",
            Some(JobState::Failed) => "failed",
            None => d.state.as_str(),
        },
        "error": d.last_error,
        "deleted_count": d.progress,
        "attempts": d.attempts,
        "created_at": time(d.created_at),
        "started_at": opt_time(d.started_at),
        "finished_at": opt_time(d.finished_at),
    })
}

/// A parameter error in Grape's form (`400 {"error": …}`), as GitLab answers one.
fn param_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

/// The project `id` names if the caller is Maintainer+ there with an `api` token (404 when
/// hidden, 403 when the role is too low or the registry is disabled).
async fn maintained_project(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<projects::Model> {
    caller.require_write()?;
    let need = RegistryNeed::ViewWithRole(Role::Maintainer);
    Ok(registry_project_for(state, Some(caller), id, need)
        .await?
        .project)
}

/// `DELETE /projects/:id/registry/repositories/:repository_id` (Maintainer+): 202; the
/// repository shows `status: delete_scheduled` until a berth-gc job worker removes it.
async fn delete_repository(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, repository_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let project = maintained_project(&state, &caller, &id).await?;
    let r = project_repository(&state, &project, &repository_id).await?;
    let d = crate::deletions::delete_repository(&state.db, &project, r.id)
        .await?
        .ok_or(ApiError::NotFound("Repository"))?;
    tracing::info!(
        project.id = project.id,
        repository.id = r.id,
        deletion.id = d.id,
        "scheduled repository deletion"
    );
    Ok((StatusCode::ACCEPTED, Json(deletion_json(&d))).into_response())
}

/// The bulk-delete rules from the request (GitLab's names; `name_regex` is the deprecated
/// alias of `name_regex_delete`), validated; the error is GitLab's parameter message.
fn bulk_params(p: &Params) -> Result<BulkRules, String> {
    let text = |key: &str| p.str(key).map_err(|e| e.to_string());
    let name_regex_delete = match text("name_regex_delete")? {
        Some(v) => v,
        None => text("name_regex")?.ok_or(
            "name_regex, name_regex_delete are missing, at least one parameter must be provided",
        )?,
    };
    let keep_n = p.int("keep_n").map_err(|_| "keep_n is invalid")?;
    let params = BulkRules {
        name_regex_delete,
        name_regex_keep: text("name_regex_keep")?,
        keep_n,
        older_than: text("older_than")?,
    };
    params.rules().map_err(|e| e.to_string())?;
    Ok(params)
}

/// `DELETE /projects/:id/registry/repositories/:repository_id/tags` (Maintainer+): 202;
/// a berth-gc job worker deletes the tags the rules select, `latest` and immutable tags
/// never.
async fn delete_tags(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, repository_id)): Path<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    let project = maintained_project(&state, &caller, &id).await?;
    let r = project_repository(&state, &project, &repository_id).await?;
    let params = match bulk_params(&p) {
        Ok(params) => params,
        Err(message) => return Ok(param_error(message)),
    };
    let d = crate::deletions::delete_tags(&state.db, &project, r.id, params)
        .await?
        .ok_or(ApiError::NotFound("Repository"))?;
    tracing::info!(
        project.id = project.id,
        repository.id = r.id,
        deletion.id = d.id,
        "scheduled bulk tag deletion"
    );
    Ok((StatusCode::ACCEPTED, Json(deletion_json(&d))).into_response())
}

/// `GET /projects/:id/registry/repositories/:repository_id/deletions`: the repository's
/// requests, newest first (viewers of the registry).
async fn list_repository_deletions(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path((id, repository_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ctx = registry_project(&state, caller.as_ref(), &id).await?;
    let r = project_repository(&state, &ctx.project, &repository_id).await?;
    let rows = q::for_repository(&state.db.read, r.id, LISTED).await?;
    Ok(Json(Value::Array(rows.iter().map(deletion_json).collect())))
}

/// `GET /projects/:id/registry/deletions` (`repository_id` optional): the project's
/// requests, newest first, including those whose repository is gone.
async fn list_deletions(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let ctx = registry_project(&state, caller.as_ref(), &id).await?;
    let repository_id = p.int("repository_id")?;
    let rows = q::for_project(&state.db.read, ctx.project.id, repository_id, LISTED).await?;
    Ok(Json(Value::Array(rows.iter().map(deletion_json).collect())))
}

/// `GET /projects/:id/registry/deletions/:deletion_id`.
async fn get_deletion(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path((id, deletion_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ctx = registry_project(&state, caller.as_ref(), &id).await?;
    let not_found = || ApiError::NotFound("Deletion");
    let deletion_id = deletion_id.parse::<i64>().map_err(|_| not_found())?;
    let d = q::find(&state.db.read, deletion_id)
        .await?
        .filter(|d| d.project_id == Some(ctx.project.id))
        .ok_or_else(not_found)?;
    Ok(Json(deletion_json(&d)))
}

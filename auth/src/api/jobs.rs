//! CI jobs, the small stand-in for a CI system: start a job (Developer+), read
//! it, finish it (which kills its token); and the job-token allowlist of a project: which
//! projects and groups may pull from it with their jobs' tokens.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_core::access::Role;
use berth_db::entity::{ci_jobs, users};
use berth_db::jobs::AllowSource;
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::groups::groups_json;
use super::lookup;
use super::params::{Params, opt_time, paged, time};
use super::projects::projects_json;
use crate::identity::JOB_LOGIN;
use crate::secrets;
use crate::state::AppState;

/// GitLab's `CI_COMMIT_REF_SLUG`: lowercase, every character outside `[a-z0-9]` replaced
/// by `-`, at most 63 bytes, no leading or trailing `-`.
pub fn ref_slug(r: &str) -> String {
    let replaced: String = r
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    replaced.trim_matches('-').to_owned()
}

fn job_json(job: &ci_jobs::Model, user: Option<&users::Model>) -> Value {
    json!({
        "id": job.id,
        "status": job.status,
        "project_id": job.project_id,
        "user": user.map(|u| json!({ "id": u.id, "username": u.username })),
        "ref": job.ref_name,
        "created_at": time(job.created_at),
        "finished_at": opt_time(job.finished_at),
    })
}

/// Job and allowlist routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/jobs", post(create_job))
        .route("/projects/{id}/jobs/{job_id}", get(get_project_job))
        .route("/job", get(get_current_job))
        .route("/jobs/{job_id}", get(get_job))
        .route("/jobs/{job_id}/finish", post(finish_job))
        .route(
            "/projects/{id}/job_token_scope/allowlist",
            get(list_allowed_projects).post(allow_project),
        )
        .route(
            "/projects/{id}/job_token_scope/allowlist/{target}",
            delete(disallow_project),
        )
        .route(
            "/projects/{id}/job_token_scope/groups_allowlist",
            get(list_allowed_groups).post(allow_group),
        )
        .route(
            "/projects/{id}/job_token_scope/groups_allowlist/{target}",
            delete(disallow_group),
        )
}

/// `POST /projects/:id/jobs` (Developer+): a running job, its token and its variables.
async fn create_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    caller.require_write()?;
    let ctx = lookup::project_with_role(&state.db.read, &caller, &id, Role::Developer).await?;
    let git_ref = p.str("ref")?;
    let secret = secrets::generate(secrets::JOB_PREFIX);
    let txn = state.db.begin_write().await?;
    let job = berth_db::jobs::create(
        &txn,
        ctx.project.id,
        caller.user().id,
        &secrets::digest(&secret),
        git_ref.as_deref(),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(job.id = job.id, project.id = ctx.project.id, "started job");
    let host = state.cfg.registry_host();
    let mut vars = json!({
        "CI_REGISTRY": host,
        "CI_REGISTRY_IMAGE": format!("{host}/{}", ctx.project.full_path),
        "CI_REGISTRY_USER": JOB_LOGIN,
        "CI_REGISTRY_PASSWORD": secret,
        "CI_JOB_TOKEN": secret,
        "CI_PROJECT_PATH": ctx.project.full_path,
        "CI_PROJECT_ID": ctx.project.id.to_string(),
        "CI_JOB_ID": job.id.to_string(),
    });
    if let (Some(r), Value::Object(o)) = (&git_ref, &mut vars) {
        o.insert("CI_COMMIT_REF_NAME".into(), json!(r));
        o.insert("CI_COMMIT_REF_SLUG".into(), json!(ref_slug(r)));
    }
    let mut body = job_json(&job, Some(caller.user()));
    if let Value::Object(o) = &mut body {
        o.insert("token".into(), json!(secret));
        o.insert("variables".into(), vars);
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The job `raw` names if the caller may see it: its own job token, or Reporter+ (or
/// Developer+ with `min`) in its project.
async fn visible_job(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    min: Role,
    write: bool,
) -> ApiResult<ci_jobs::Model> {
    let id: i64 = raw.parse().map_err(|_| ApiError::NotFound("Job"))?;
    if let Some(own) = &caller.job {
        return if own.id == id {
            Ok(own.clone())
        } else {
            Err(ApiError::Forbidden)
        };
    }
    if write {
        caller.require_write()?;
    } else {
        caller.require_read()?;
    }
    let job = berth_db::jobs::by_id(&state.db.read, id)
        .await?
        .ok_or(ApiError::NotFound("Job"))?;
    lookup::project_with_role(&state.db.read, caller, &job.project_id.to_string(), min).await?;
    Ok(job)
}

async fn job_response(state: &AppState, job: &ci_jobs::Model) -> ApiResult<Json<Value>> {
    let user = berth_db::users::by_id(&state.db.read, job.user_id).await?;
    Ok(Json(job_json(job, user.as_ref())))
}

/// `GET /jobs/:id`.
async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = visible_job(&state, &caller, &job_id, Role::Reporter, false).await?;
    job_response(&state, &job).await
}

/// `GET /projects/:id/jobs/:job_id`.
async fn get_project_job(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, job_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let job = visible_job(&state, &caller, &job_id, Role::Reporter, false).await?;
    let ctx = lookup::project(&state.db.read, &id).await?;
    if ctx.project.id != job.project_id {
        return Err(ApiError::NotFound("Job"));
    }
    job_response(&state, &job).await
}

/// `GET /job`: the job whose `JOB-TOKEN` is used.
async fn get_current_job(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let job = caller.job.clone().ok_or(ApiError::Unauthorized)?;
    job_response(&state, &job).await
}

/// `POST /jobs/:id/finish`: `status` (success, failed, canceled; default success).
async fn finish_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let status = p.str("status")?.unwrap_or_else(|| "success".into());
    if !["success", "failed", "canceled"].contains(&status.as_str()) {
        return Err(ApiError::BadRequest(
            "status does not have a valid value".into(),
        ));
    }
    let job = visible_job(&state, &caller, &job_id, Role::Developer, true).await?;
    let txn = state.db.begin_write().await?;
    if !berth_db::jobs::finish(&txn, job.id, &status).await? {
        return Err(ApiError::BadRequest("Job is not running".into()));
    }
    txn.commit().await?;
    tracing::info!(job.id = job.id, job.status = %status, "finished job");
    let job = berth_db::jobs::by_id(&state.db.read, job.id)
        .await?
        .ok_or(ApiError::NotFound("Job"))?;
    job_response(&state, &job).await
}

/// The project whose allowlist is managed (Maintainer+).
async fn allowlist_owner(
    state: &AppState,
    caller: &Caller,
    id: &str,
    write: bool,
) -> ApiResult<i64> {
    if write {
        caller.require_write()?;
    } else {
        caller.require_read()?;
    }
    let ctx = lookup::project_with_role(&state.db.read, caller, id, Role::Maintainer).await?;
    Ok(ctx.project.id)
}

/// `GET /projects/:id/job_token_scope/allowlist`: projects whose jobs may pull from `:id`.
async fn list_allowed_projects(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let page = p.page()?;
    let project = allowlist_owner(&state, &caller, &id, false).await?;
    let (rows, total) =
        berth_db::jobs::allowed_projects(&state.db.read, project, page.offset(), page.per_page())
            .await?;
    let items = projects_json(&state, &rows).await?;
    Ok(paged(&state, &uri, page, total, items))
}

/// `GET /projects/:id/job_token_scope/groups_allowlist`.
async fn list_allowed_groups(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let page = p.page()?;
    let project = allowlist_owner(&state, &caller, &id, false).await?;
    let (rows, total) =
        berth_db::jobs::allowed_groups(&state.db.read, project, page.offset(), page.per_page())
            .await?;
    let items = groups_json(&state, &rows).await?;
    Ok(paged(&state, &uri, page, total, items))
}

async fn change(state: &AppState, project: i64, source: AllowSource, add: bool) -> ApiResult<bool> {
    let txn = state.db.begin_write().await?;
    let changed = if add {
        berth_db::jobs::allow(&txn, project, source).await?
    } else {
        berth_db::jobs::disallow(&txn, project, source).await?
    };
    txn.commit().await?;
    Ok(changed)
}

/// `POST /projects/:id/job_token_scope/allowlist`: `target_project_id`.
async fn allow_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let project = allowlist_owner(&state, &caller, &id, true).await?;
    let target = p.required("target_project_id")?;
    let (source, _) = lookup::visible_project(&state.db.read, Some(&caller), &target).await?;
    let source = source.project.id;
    if !change(&state, project, AllowSource::Project(source), true).await? {
        return Err(ApiError::BadRequest(
            "Target project is already in the job token scope".into(),
        ));
    }
    let body = json!({ "source_project_id": project, "target_project_id": source });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /projects/:id/job_token_scope/groups_allowlist`: `target_group_id`.
async fn allow_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let project = allowlist_owner(&state, &caller, &id, true).await?;
    let target = p.required("target_group_id")?;
    let group = lookup::group(&state.db.read, &target).await?;
    let role = lookup::group_role(&state.db.read, Some(&caller), &group).await?;
    if !lookup::can_view(&group.visibility, Some(&caller), role) {
        return Err(ApiError::NotFound("Group"));
    }
    if !change(&state, project, AllowSource::Namespace(group.id), true).await? {
        return Err(ApiError::BadRequest(
            "Target group is already in the job token scope".into(),
        ));
    }
    let body = json!({ "source_project_id": project, "target_group_id": group.id });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn target_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::NotFound("Target"))
}

/// `DELETE /projects/:id/job_token_scope/allowlist/:target_project_id`: 204.
async fn disallow_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, target)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = allowlist_owner(&state, &caller, &id, true).await?;
    let source = AllowSource::Project(target_id(&target)?);
    if change(&state, project, source, false).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("Target"))
    }
}

/// `DELETE /projects/:id/job_token_scope/groups_allowlist/:target_group_id`: 204.
async fn disallow_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, target)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = allowlist_owner(&state, &caller, &id, true).await?;
    let source = AllowSource::Namespace(target_id(&target)?);
    if change(&state, project, source, false).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("Target"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_slugs_follow_gitlab() {
        assert_eq!(ref_slug("main"), "main");
        assert_eq!(ref_slug("Feature/Add_Thing"), "feature-add-thing");
        assert_eq!(ref_slug("-v1.2-"), "v1-2");
        assert_eq!(ref_slug(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn api_routes_build_without_conflicts() {
        let _ = super::super::router();
    }
}

//! `GET /projects/:id/registry/repositories/:repository_id/cleanup_preview` (Reporter+ who
//! may view the registry, as for its tags):
//! Berth's dry run of the project's cleanup policy on one repository. It lists
//! exactly the tags the next scheduled run would delete and, for each kept tag, why.
//!
//! It calls the evaluation the run itself uses ([`berth_db::cleanup_plan::evaluate`]), as
//! of the instant that run judges at: the start of a run already scheduled, ongoing or
//! unfinished; otherwise the policy's `next_run_at` (a scheduled run judges as of its due
//! time, however late the scheduler ticks), or now when there is none.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use berth_core::access::Role;
use berth_core::cleanup::{Decision, KeepReason};
use berth_core::cleanup_policy::Policy;
use berth_db::cleanup_plan;
use chrono::Utc;
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::params::{opt_time, time};
use super::registry::{RegistryNeed, project_repository, registry_project_for};
use crate::state::AppState;

/// Preview route.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/projects/{id}/registry/repositories/{repository_id}/cleanup_preview",
        get(get_cleanup_preview),
    )
}

/// `GET …/cleanup_preview`: `{repository_id, path, policy, as_of, delete_count, delete,
/// tags: [{name, digest, published_at, action, reason, immutable_pattern}]}`.
async fn get_cleanup_preview(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, repository_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let c = &state.db.read;
    // The tags it lists are registry data: the registry's access rules first (a disabled
    // registry shows nothing to anyone), then Reporter+ as GitLab's policy pages.
    let need = RegistryNeed::ViewWithRole(Role::Reporter);
    let ctx = registry_project_for(&state, Some(&caller), &id, need).await?;
    let repo = project_repository(&state, &ctx.project, &repository_id).await?;
    let row = berth_db::expiration_policies::get(c, ctx.project.id).await?;
    let policy = row
        .as_ref()
        .map_or_else(Policy::default, berth_db::expiration_policies::policy);
    let next_run_at = row.as_ref().and_then(|r| r.next_run_at);
    let rules = cleanup_plan::rules(&policy).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let as_of = cleanup_plan::next_run_as_of(c, repo.id, next_run_at, Utc::now()).await?;
    let plan = cleanup_plan::evaluate(c, ctx.project.id, repo.id, &rules, as_of).await?;
    let doomed = plan.doomed();
    let tags: Vec<Value> = plan
        .verdicts
        .iter()
        .map(|v| {
            let (action, reason, pattern) = match &v.decision {
                Decision::Delete => ("delete", None, None),
                Decision::Keep(KeepReason::Immutable(p)) => {
                    ("keep", Some("immutable"), Some(p.clone()))
                }
                Decision::Keep(r) => ("keep", Some(r.as_str()), None),
            };
            json!({
                "name": v.tag.name,
                "digest": v.tag.digest,
                "published_at": time(v.tag.published_at),
                "action": action,
                "reason": reason,
                "immutable_pattern": pattern,
            })
        })
        .collect();
    Ok(Json(json!({
        "repository_id": repo.id,
        "path": repo.name,
        "policy": {
            "enabled": policy.enabled,
            "cadence": policy.cadence,
            "keep_n": policy.keep_n,
            "older_than": policy.older_than,
            "name_regex": policy.name_regex,
            "name_regex_keep": policy.name_regex_keep,
            "next_run_at": if policy.enabled { opt_time(next_run_at) } else { Value::Null },
        },
        "as_of": time(as_of),
        "delete_count": doomed.len(),
        "delete": doomed,
        "tags": tags,
    })))
}

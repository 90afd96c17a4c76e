//! `/projects/:id/registry/protection/tag/rules` (Maintainer+): immutable tag rules, in the
//! shape of GitLab's container registry tag rules API, where an immutable rule is one with
//! no minimum access levels. Rules are created and deleted, never updated; at most five per
//! project. Berth has no role-based protected tags, so a rule with access levels is refused.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use berth_core::access::Role;
use berth_core::immutability::{MAX_RULES_PER_PROJECT, validate_pattern};
use berth_db::entity::tag_immutability_rules as rules;
use berth_db::tag_rules;
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::lookup;
use super::params::Params;
use crate::state::AppState;

/// A rule as GitLab shows it; both access levels are `null` (immutable: nobody may push
/// over or delete a matching tag).
pub fn tag_rule_json(r: &rules::Model) -> Value {
    json!({
        "id": r.id,
        "project_id": r.project_id,
        "tag_name_pattern": r.tag_name_pattern,
        "minimum_access_level_for_push": null,
        "minimum_access_level_for_delete": null,
    })
}

/// Tag rule routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{id}/registry/protection/tag/rules",
            get(list_tag_rules).post(create_tag_rule),
        )
        .route(
            "/projects/{id}/registry/protection/tag/rules/{rule_id}",
            delete(delete_tag_rule),
        )
}

/// `GET …/tag/rules`: every rule of the project, oldest first (at most five: unpaged).
async fn list_tag_rules(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_read()?;
    let ctx = lookup::project_with_role(&state.db.read, &caller, &id, Role::Maintainer).await?;
    let rows = tag_rules::list(&state.db.read, ctx.project.id).await?;
    Ok(Json(Value::Array(rows.iter().map(tag_rule_json).collect())))
}

/// `POST …/tag/rules`: `tag_name_pattern` (RE2, at most 100 characters); 201.
async fn create_tag_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    caller.require_write()?;
    let ctx = lookup::project_with_role(&state.db.read, &caller, &id, Role::Maintainer).await?;
    let pattern = p.required("tag_name_pattern")?;
    validate_pattern(&pattern).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    for key in [
        "minimum_access_level_for_push",
        "minimum_access_level_for_delete",
    ] {
        if p.str(key)?.is_some() {
            return Err(ApiError::BadRequest(format!(
                "{key} is not supported: Berth's tag rules are immutable rules (leave it out)"
            )));
        }
    }
    let txn = state.db.begin_write().await?;
    tag_rules::lock_project(&txn, ctx.project.id).await?;
    if tag_rules::count(&txn, ctx.project.id).await? >= MAX_RULES_PER_PROJECT {
        return Err(ApiError::BadRequest(format!(
            "Maximum number of tag protection rules per project ({MAX_RULES_PER_PROJECT}) reached"
        )));
    }
    let row = tag_rules::create(&txn, ctx.project.id, &pattern).await?;
    txn.commit().await?;
    tracing::info!(
        project.id = ctx.project.id,
        rule.id = row.id,
        "created immutable tag rule"
    );
    Ok((StatusCode::CREATED, Json(tag_rule_json(&row))).into_response())
}

/// `DELETE …/tag/rules/:rule_id`: 204. Tokens already issued keep the rule until they
/// expire (as in GitLab).
async fn delete_tag_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, rule_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    let ctx = lookup::project_with_role(&state.db.read, &caller, &id, Role::Maintainer).await?;
    let not_found = || ApiError::NotFound("Protection Rule");
    let rule_id: i64 = rule_id.parse().map_err(|_| not_found())?;
    let txn = state.db.begin_write().await?;
    if !tag_rules::delete(&txn, ctx.project.id, rule_id).await? {
        return Err(not_found());
    }
    txn.commit().await?;
    tracing::info!(
        project.id = ctx.project.id,
        rule.id = rule_id,
        "deleted immutable tag rule"
    );
    Ok(StatusCode::NO_CONTENT)
}

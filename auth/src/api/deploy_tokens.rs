//! `/projects/:id/deploy_tokens` and `/groups/:id/deploy_tokens` (Maintainer+): registry
//! credentials that belong to a project or group rather than a person. The secret is shown
//! once; deleting revokes.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_core::access::Role;
use berth_db::entity::deploy_tokens;
use berth_db::tokens::{self, DeployOwner, NewDeployToken};
use chrono::Utc;
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::members::Scope;
use super::params::{Params, opt_time, paged};
use crate::identity::split_scopes;
use crate::secrets;
use crate::state::AppState;

/// Scopes a deploy token may carry.
pub const SCOPES: [&str; 5] = [
    "read_repository",
    "read_registry",
    "write_registry",
    "read_package_registry",
    "write_package_registry",
];

/// A deploy token as GitLab shows it (never its secret).
pub fn deploy_token_json(t: &deploy_tokens::Model) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "username": t.username,
        "expires_at": opt_time(t.expires_at),
        "scopes": split_scopes(&t.scopes),
        "revoked": t.revoked,
        "expired": t.expires_at.is_some_and(|e| e <= Utc::now()),
    })
}

/// Deploy token routes.
pub fn routes() -> Router<AppState> {
    let scoped = |kind: &'static str, base: &str| {
        Router::new()
            .route(
                base,
                get(move |s, u, c, p, q| list_deploy_tokens(s, u, c, p, q, kind))
                    .post(move |s, c, p, q| create_deploy_token(s, c, p, q, kind)),
            )
            .route(
                &format!("{base}/{{token_id}}"),
                get(move |s, c, p| get_deploy_token(s, c, p, kind))
                    .delete(move |s, c, p| revoke_deploy_token(s, c, p, kind)),
            )
    };
    Router::new()
        .merge(scoped("project", "/projects/{id}/deploy_tokens"))
        .merge(scoped("group", "/groups/{id}/deploy_tokens"))
}

async fn owner(
    state: &AppState,
    caller: &Caller,
    kind: &'static str,
    id: &str,
) -> ApiResult<DeployOwner> {
    let scope = Scope::with_role(state, caller, kind, id, Role::Maintainer).await?;
    Ok(if kind == "project" {
        DeployOwner::Project(scope.id)
    } else {
        DeployOwner::Namespace(scope.id)
    })
}

/// `GET …/deploy_tokens` (`active=true`: only usable ones).
async fn list_deploy_tokens(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
    kind: &'static str,
) -> ApiResult<Response> {
    caller.require_read()?;
    let page = p.page()?;
    let owner = owner(&state, &caller, kind, &id).await?;
    let active = p.bool("active")?.unwrap_or(false);
    let (rows, total) = tokens::list_deploy_tokens(
        &state.db.read,
        owner,
        active,
        page.offset(),
        page.per_page(),
    )
    .await?;
    let items = rows.iter().map(deploy_token_json).collect();
    Ok(paged(&state, &uri, page, total, items))
}

/// `POST …/deploy_tokens`: `name`, `scopes`, `expires_at`, `username`.
async fn create_deploy_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
    kind: &'static str,
) -> ApiResult<Response> {
    caller.require_write()?;
    let owner = owner(&state, &caller, kind, &id).await?;
    let name = p.required("name")?;
    let scopes = p.list("scopes")?.unwrap_or_default();
    if scopes.is_empty() {
        return Err(ApiError::BadRequest("scopes is missing".into()));
    }
    if scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(ApiError::BadRequest(
            "scopes does not have a valid value".into(),
        ));
    }
    let expires_at = p.date("expires_at")?.flatten();
    if expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::BadRequest(
            "expires_at must be in the future".into(),
        ));
    }
    let username = p.str("username")?;
    if username.as_deref().is_some_and(|u| {
        !u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
    }) {
        return Err(ApiError::BadRequest(
            "username can contain only letters, digits, '_', '-', '+' and '.'".into(),
        ));
    }
    let secret = secrets::generate(secrets::DEPLOY_PREFIX);
    let txn = state.db.begin_write().await?;
    let row = tokens::create_deploy_token(
        &txn,
        NewDeployToken {
            owner,
            name: &name,
            username: username.as_deref(),
            digest: &secrets::digest(&secret),
            scopes: &scopes,
            expires_at,
        },
    )
    .await?;
    txn.commit().await?;
    tracing::info!(token.id = row.id, "created {kind} deploy token");
    let mut body = deploy_token_json(&row);
    if let Value::Object(o) = &mut body {
        o.insert("token".into(), json!(secret));
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn find(state: &AppState, owner: DeployOwner, raw: &str) -> ApiResult<deploy_tokens::Model> {
    let id: i64 = raw
        .parse()
        .map_err(|_| ApiError::NotFound("Deploy Token"))?;
    tokens::deploy_token(&state.db.read, owner, id)
        .await?
        .ok_or(ApiError::NotFound("Deploy Token"))
}

/// `GET …/deploy_tokens/:token_id`.
async fn get_deploy_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
    kind: &'static str,
) -> ApiResult<Json<Value>> {
    caller.require_read()?;
    let owner = owner(&state, &caller, kind, &id).await?;
    Ok(Json(deploy_token_json(
        &find(&state, owner, &token_id).await?,
    )))
}

/// `DELETE …/deploy_tokens/:token_id`: revoke, 204.
async fn revoke_deploy_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
    kind: &'static str,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    let owner = owner(&state, &caller, kind, &id).await?;
    let token = find(&state, owner, &token_id).await?;
    let txn = state.db.begin_write().await?;
    tokens::revoke_deploy_token(&txn, token.id).await?;
    txn.commit().await?;
    tracing::info!(token.id = token.id, "revoked {kind} deploy token");
    Ok(StatusCode::NO_CONTENT)
}

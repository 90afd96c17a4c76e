//! Project and group access tokens (`/projects/:id/access_tokens`,
//! `/groups/:id/access_tokens`): each belongs to a bot user that is a member of the project
//! or group. Secrets are shown once and stored as digests.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_core::access::Role;
use berth_db::entity::{personal_access_tokens as pat, users};
use berth_db::project_admin::{bot_prefix, bots};
use berth_db::tokens::{self, PatQuery};
use rand::RngCore;
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::members::Scope;
use super::params::{Params, paged};
use super::personal_access_tokens::{expiry, issue, pat_json, rotate, scopes, with};
use crate::state::AppState;

/// Project and group access token routes.
pub fn routes() -> Router<AppState> {
    let scoped = |kind: &'static str, base: &str| {
        Router::new()
            .route(
                base,
                get(move |s, u, c, p, i| list_bot_tokens(s, u, c, p, i, kind))
                    .post(move |s, c, p, i| create_bot_token(s, c, p, i, kind)),
            )
            .route(
                &format!("{base}/{{token_id}}"),
                get(move |s, c, p| get_bot_token(s, c, p, kind))
                    .delete(move |s, c, p| revoke_bot_token(s, c, p, kind)),
            )
            .route(
                &format!("{base}/{{token_id}}/rotate"),
                post(move |s, c, pa, p| rotate_bot_token(s, c, pa, p, kind)),
            )
    };
    Router::new()
        .merge(scoped("project", "/projects/{id}/access_tokens"))
        .merge(scoped("group", "/groups/{id}/access_tokens"))
}

async fn target(
    state: &AppState,
    caller: &Caller,
    kind: &'static str,
    id: &str,
) -> ApiResult<Scope> {
    Scope::with_role(state, caller, kind, id, Role::Maintainer).await
}

async fn level_of(state: &AppState, t: &Scope, user_id: i64) -> ApiResult<Value> {
    let m = berth_db::members::get(&state.db.read, t.source(), user_id).await?;
    Ok(m.map_or(Value::Null, |m| json!(m.access_level)))
}

/// `GET /{projects,groups}/:id/access_tokens`.
async fn list_bot_tokens(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
    kind: &'static str,
) -> ApiResult<Response> {
    caller.require_read()?;
    let page = p.page()?;
    let t = target(&state, &caller, kind, &id).await?;
    let bots = bots(&state.db.read, kind, t.id).await?;
    let q = PatQuery {
        user_ids: Some(bots.iter().map(|b| b.id).collect()),
        active: p
            .one_of("state", &["active", "inactive"])?
            .map(|s| s == "active"),
        revoked: None,
    };
    let (rows, total) =
        tokens::list_pats(&state.db.read, &q, page.offset(), page.per_page()).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(with(
            pat_json(r),
            "access_level",
            level_of(&state, &t, r.user_id).await?,
        ));
    }
    Ok(paged(&state, &uri, page, total, items))
}

/// Only a caller whose own role reaches the bot's level may revoke or rotate its token: a
/// Maintainer rotating an Owner-level bot's token would otherwise receive an Owner-level
/// secret (the same rule as creating one, and as members' "only Owners touch Owner").
async fn may_manage(state: &AppState, t: &Scope, bot_id: i64) -> ApiResult<()> {
    let level = berth_db::members::get(&state.db.read, t.source(), bot_id)
        .await?
        .map_or(0, |m| m.access_level);
    if level > t.role.map_or(0, Role::level) {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

/// A token of one of `t`'s bots, or 404.
async fn bot_token(
    state: &AppState,
    t: &Scope,
    token_id: &str,
) -> ApiResult<(pat::Model, users::Model)> {
    let missing = ApiError::NotFound("Access Token");
    let id: i64 = token_id
        .parse()
        .map_err(|_| ApiError::NotFound("Access Token"))?;
    let token = tokens::pat(&state.db.read, id).await?.ok_or(missing)?;
    let bot = berth_db::users::by_id(&state.db.read, token.user_id)
        .await?
        .filter(|u| u.bot && u.username.starts_with(&bot_prefix(t.kind, t.id)))
        .ok_or(ApiError::NotFound("Access Token"))?;
    Ok((token, bot))
}

/// `POST /{projects,groups}/:id/access_tokens`: a bot member holding a new token.
async fn create_bot_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
    kind: &'static str,
) -> ApiResult<Response> {
    caller.require_write()?;
    let t = target(&state, &caller, kind, &id).await?;
    let name = p.required("name")?;
    let scopes = scopes(&p)?;
    let expires_at = Some(expiry(&p, None, state.max_token_lifetime)?);
    let level = p.int("access_level")?.unwrap_or(40);
    let role = i32::try_from(level)
        .ok()
        .and_then(Role::from_level)
        .ok_or_else(|| ApiError::BadRequest("access_level does not have a valid value".into()))?;
    if Some(role) > t.role {
        return Err(ApiError::BadRequest(
            "access_level cannot be higher than your own".into(),
        ));
    }
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let username = format!("{}{}", bot_prefix(kind, t.id), hex::encode(suffix));
    let email = format!("{username}@noreply.berth.local");
    let txn = state.db.begin_write().await?;
    let bot = berth_db::users::create(
        &txn,
        berth_db::users::NewUser {
            username: &username,
            email: &email,
            name: &name,
            password_hash: None,
            admin: false,
            bot: true,
        },
    )
    .await?;
    berth_db::members::add(&txn, t.source(), bot.id, role.level(), expires_at).await?;
    let (row, secret) = issue(&txn, bot.id, &name, &scopes, expires_at).await?;
    txn.commit().await?;
    tracing::info!(
        token.id = row.id,
        user.id = bot.id,
        "created {kind} access token"
    );
    let body = with(pat_json(&row), "access_level", json!(role.level()));
    let body = with(body, "token", json!(secret));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /{projects,groups}/:id/access_tokens/:token_id`.
async fn get_bot_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
    kind: &'static str,
) -> ApiResult<Json<Value>> {
    caller.require_read()?;
    let t = target(&state, &caller, kind, &id).await?;
    let (token, bot) = bot_token(&state, &t, &token_id).await?;
    Ok(Json(with(
        pat_json(&token),
        "access_level",
        level_of(&state, &t, bot.id).await?,
    )))
}

/// `DELETE /{projects,groups}/:id/access_tokens/:token_id`: revoke and block the bot, 204.
async fn revoke_bot_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
    kind: &'static str,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    let t = target(&state, &caller, kind, &id).await?;
    let (token, bot) = bot_token(&state, &t, &token_id).await?;
    may_manage(&state, &t, bot.id).await?;
    let txn = state.db.begin_write().await?;
    tokens::revoke_pat(&txn, token.id).await?;
    berth_db::users::set_state(&txn, bot, "blocked").await?;
    txn.commit().await?;
    tracing::info!(token.id = token.id, "revoked {kind} access token");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /{projects,groups}/:id/access_tokens/:token_id/rotate`.
async fn rotate_bot_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
    p: Params,
    kind: &'static str,
) -> ApiResult<Response> {
    caller.require_write()?;
    let t = target(&state, &caller, kind, &id).await?;
    let (old, bot) = bot_token(&state, &t, &token_id).await?;
    may_manage(&state, &t, bot.id).await?;
    if bot.state != "active" {
        return Err(ApiError::BadRequest("Token already revoked".into()));
    }
    let (row, secret) = rotate(&state, &old, &p).await?;
    let body = with(
        pat_json(&row),
        "access_level",
        level_of(&state, &t, bot.id).await?,
    );
    Ok(Json(with(body, "token", json!(secret))).into_response())
}

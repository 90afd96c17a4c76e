//! `/user` and `/users`: the current user, and instance admins managing users.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_db::entity::users;
use berth_db::users::{NewUser, UserQuery};
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::params::{Params, paged, time, valid_path};
use crate::state::AppState;

/// A user as others see them.
pub fn user_basic(state: &AppState, u: &users::Model) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "name": u.name,
        "state": u.state,
        "avatar_url": null,
        "web_url": format!("{}/{}", state.cfg.auth_url.trim_end_matches('/'), u.username),
        "bot": u.bot,
        "created_at": time(u.created_at),
    })
}

/// A user as they and admins see them.
pub fn user_full(state: &AppState, u: &users::Model) -> Value {
    let mut v = user_basic(state, u);
    if let Value::Object(o) = &mut v {
        o.insert("email".into(), json!(u.email));
        o.insert("is_admin".into(), json!(u.admin));
    }
    v
}

fn user_json(state: &AppState, caller: &Caller, u: &users::Model) -> Value {
    if caller.is_admin() || caller.user().id == u.id {
        user_full(state, u)
    } else {
        user_basic(state, u)
    }
}

/// `/user` and `/users` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/user", get(get_current_user))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user).delete(delete_user))
        .route("/users/{id}/block", post(block_user))
        .route("/users/{id}/unblock", post(unblock_user))
}

/// `GET /user`.
async fn get_current_user(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    if caller.job.is_some()
        || !["api", "read_api", "read_user"]
            .iter()
            .any(|s| caller.cred.has_scope(s))
    {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(user_full(&state, caller.user())))
}

/// `GET /users`: admins list everyone; others see themselves, or look a user up by
/// `username=`.
async fn list_users(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require_read()?;
    let page = p.page()?;
    let mut q = UserQuery {
        username: p.str("username")?,
        search: p.str("search")?,
        search_email: caller.is_admin(),
        state: match (p.bool("active")?, p.bool("blocked")?) {
            (Some(true), _) => Some("active".into()),
            (_, Some(true)) => Some("blocked".into()),
            _ => None,
        },
        id: None,
    };
    if !caller.is_admin() && q.username.is_none() {
        q.id = Some(caller.user().id);
    }
    let (rows, total) =
        berth_db::users::list(&state.db.read, &q, page.offset(), page.per_page()).await?;
    let items = rows.iter().map(|u| user_json(&state, &caller, u)).collect();
    Ok(paged(&state, &uri, page, total, items))
}

async fn find_user(state: &AppState, id: &str) -> ApiResult<users::Model> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound("User"))?;
    berth_db::users::by_id(&state.db.read, id)
        .await?
        .ok_or(ApiError::NotFound("User"))
}

/// `GET /users/:id`.
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_read()?;
    let user = find_user(&state, &id).await?;
    Ok(Json(user_json(&state, &caller, &user)))
}

/// `POST /users` (admin): `username`, `email`, `name`, `password`, `admin`.
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let username = p.required("username")?;
    let email = p.required("email")?;
    let name = p.required("name")?;
    if !valid_path(&username) {
        return Err(ApiError::BadRequest(
            "username can contain only lowercase letters, digits, '_', '-' and '.', and must start and end with a letter or digit".into(),
        ));
    }
    if !email.contains('@') {
        return Err(ApiError::BadRequest("email is invalid".into()));
    }
    let hash = match p.str("password")? {
        Some(pw) if pw.len() < 8 => {
            return Err(ApiError::BadRequest(
                "password is too short (minimum is 8 characters)".into(),
            ));
        }
        Some(pw) => Some(crate::passwords::hash(pw).await?),
        None => None,
    };
    let admin = p.bool("admin")?.unwrap_or(false);
    let txn = state.db.begin_write().await?;
    if berth_db::users::username_taken(&txn, &username).await? {
        return Err(ApiError::Conflict("Username has already been taken".into()));
    }
    if berth_db::users::email_taken(&txn, &email).await? {
        return Err(ApiError::Conflict("Email has already been taken".into()));
    }
    let created = berth_db::users::create(
        &txn,
        NewUser {
            username: &username,
            email: &email,
            name: &name,
            password_hash: hash,
            admin,
            bot: false,
        },
    )
    .await;
    let user = match created {
        Ok(u) => u,
        Err(e) if berth_db::is_unique_violation(&e) => {
            return Err(ApiError::Conflict(
                "Username or email has already been taken".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    txn.commit().await?;
    tracing::info!(user.id = user.id, user.name = %user.username, "created user");
    Ok((StatusCode::CREATED, Json(user_full(&state, &user))).into_response())
}

async fn set_state(state: &AppState, caller: &Caller, id: &str, to: &str) -> ApiResult<Response> {
    caller.require_admin()?;
    let user = find_user(state, id).await?;
    let txn = state.db.begin_write().await?;
    berth_db::users::set_state(&txn, user, to).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(json!(true))).into_response())
}

/// `POST /users/:id/block` (admin): 201 `true`.
async fn block_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_state(&state, &caller, &id, "blocked").await
}

/// `POST /users/:id/unblock` (admin): 201 `true`.
async fn unblock_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_state(&state, &caller, &id, "active").await
}

/// `DELETE /users/:id` (admin): 204. The repositories of their personal namespace are
/// deleted asynchronously, like a deleted project's.
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let user = find_user(&state, &id).await?;
    let scheduled = crate::deletions::delete_user(&state.db, user.id).await?;
    tracing::info!(
        user.id = user.id,
        repositories_scheduled = scheduled,
        "deleted user"
    );
    Ok(StatusCode::NO_CONTENT)
}

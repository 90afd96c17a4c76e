//! Personal access tokens (`/users/:id/personal_access_tokens`, `/user/personal_access_tokens`,
//! `/personal_access_tokens…`), and the token helpers project and group access tokens share
//! (theirs are personal access tokens of bot users). Secrets are shown once and stored as
//! digests.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_db::entity::{personal_access_tokens as pat, users};
use berth_db::tokens::{self, NewPat, PatQuery};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::params::{Params, opt_date, opt_time, paged, time};
use crate::identity::split_scopes;
use crate::secrets;
use crate::state::AppState;

/// Scopes an access token may carry.
pub const SCOPES: [&str; 7] = [
    "api",
    "read_api",
    "read_user",
    "read_registry",
    "write_registry",
    "read_repository",
    "write_repository",
];

/// The `scopes` parameter: present, non-empty, all known.
pub(super) fn scopes(p: &Params) -> ApiResult<Vec<String>> {
    let scopes = p.list("scopes")?.unwrap_or_default();
    if scopes.is_empty() {
        return Err(ApiError::BadRequest("scopes is missing".into()));
    }
    if scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(ApiError::BadRequest(
            "scopes does not have a valid value".into(),
        ));
    }
    Ok(scopes)
}

/// The latest expiry an access token made now may have: `max` (the instance's
/// `max_token_lifetime`) from now.
fn latest_expiry(now: DateTime<Utc>, max: Duration) -> DateTime<Utc> {
    now.checked_add_signed(max)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The expiry a token made without one gets (GitLab): the start (midnight UTC) of the day
/// the maximum lifetime ends on, as GitLab's tokens expire at the start of their expiry
/// date; the exact end when the maximum is shorter than what is left of today.
fn longest_expiry(now: DateTime<Utc>, max: Duration) -> DateTime<Utc> {
    let latest = latest_expiry(now, max);
    latest
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .filter(|day| *day > now)
        .unwrap_or(latest)
}

/// `expires_at` of a new access token: in the future and no later than the instance's
/// maximum lifetime `max` from now (`400` otherwise). Absent: `default`, capped at the
/// longest allowed; absent with no default, or given as null: the longest allowed. So
/// every token made through the API expires, and rotating one cannot remove its expiry.
pub(super) fn expiry(
    p: &Params,
    default: Option<DateTime<Utc>>,
    max: Duration,
) -> ApiResult<DateTime<Utc>> {
    let now = Utc::now();
    let longest = longest_expiry(now, max);
    let at = match p.date("expires_at")? {
        Some(Some(at)) => at,
        Some(None) => longest,
        None => default.map_or(longest, |d| d.min(longest)),
    };
    if at <= now {
        return Err(ApiError::BadRequest(
            "expires_at must be in the future".into(),
        ));
    }
    if at > latest_expiry(now, max) {
        return Err(ApiError::BadRequest(format!(
            "expires_at must be on or before {} (the instance's maximum token lifetime)",
            longest.date_naive().format("%Y-%m-%d")
        )));
    }
    Ok(at)
}

/// A week from today: GitLab's expiry for a rotated token.
fn next_week() -> Option<DateTime<Utc>> {
    (Utc::now() + Duration::days(7))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
}

/// A token as GitLab shows it (never its secret).
pub fn pat_json(t: &pat::Model) -> Value {
    let active = !t.revoked && t.expires_at.is_none_or(|e| e > Utc::now());
    json!({
        "id": t.id,
        "name": t.name,
        "revoked": t.revoked,
        "created_at": time(t.created_at),
        "description": null,
        "scopes": split_scopes(&t.scopes),
        "user_id": t.user_id,
        "last_used_at": opt_time(t.last_used_at),
        "active": active,
        "expires_at": opt_date(t.expires_at),
    })
}

/// `v` with `key` set to `value`.
pub(super) fn with(mut v: Value, key: &str, value: Value) -> Value {
    if let Value::Object(o) = &mut v {
        o.insert(key.into(), value);
    }
    v
}

/// Insert a token for `user_id`; the row and the secret.
pub(crate) async fn issue(
    c: &impl sea_orm::ConnectionTrait,
    user_id: i64,
    name: &str,
    scopes: &[String],
    expires_at: Option<DateTime<Utc>>,
) -> ApiResult<(pat::Model, String)> {
    let secret = secrets::generate(secrets::PAT_PREFIX);
    let row = tokens::create_pat(
        c,
        NewPat {
            user_id,
            name,
            digest: &secrets::digest(&secret),
            scopes,
            expires_at,
        },
    )
    .await?;
    Ok((row, secret))
}

/// Personal access token routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/user/personal_access_tokens", post(create_own_pat))
        .route(
            "/users/{user_id}/personal_access_tokens",
            post(create_user_pat),
        )
        .route("/personal_access_tokens", get(list_pats))
        .route(
            "/personal_access_tokens/self",
            get(get_self_pat).delete(revoke_self_pat),
        )
        .route("/personal_access_tokens/self/rotate", post(rotate_self_pat))
        .route(
            "/personal_access_tokens/{id}",
            get(get_pat).delete(revoke_pat),
        )
        .route("/personal_access_tokens/{id}/rotate", post(rotate_pat))
}

async fn create_pat_for(state: &AppState, user: &users::Model, p: &Params) -> ApiResult<Response> {
    let name = p.required("name")?;
    let scopes = scopes(p)?;
    let expires_at = expiry(p, None, state.max_token_lifetime)?;
    let txn = state.db.begin_write().await?;
    let (row, secret) = issue(&txn, user.id, &name, &scopes, Some(expires_at)).await?;
    txn.commit().await?;
    tracing::info!(
        user.id = user.id,
        token.id = row.id,
        "created personal access token"
    );
    let body = with(pat_json(&row), "token", json!(secret));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /user/personal_access_tokens`: a token for yourself.
async fn create_own_pat(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require_write()?;
    if caller.user().bot {
        return Err(ApiError::Forbidden);
    }
    create_pat_for(&state, caller.user(), &p).await
}

/// `POST /users/:user_id/personal_access_tokens`: admins for anyone, users for themselves.
async fn create_user_pat(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    caller.require_write()?;
    let id: i64 = user_id.parse().map_err(|_| ApiError::NotFound("User"))?;
    if !caller.is_admin() && (id != caller.user().id || caller.user().bot) {
        return Err(ApiError::Forbidden);
    }
    let user = berth_db::users::by_id(&state.db.read, id)
        .await?
        .ok_or(ApiError::NotFound("User"))?;
    create_pat_for(&state, &user, &p).await
}

/// `GET /personal_access_tokens`: your own; admins everyone's (`user_id=` narrows).
async fn list_pats(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require_read()?;
    let page = p.page()?;
    let user_id = p.int("user_id")?;
    let user_ids = match (caller.is_admin(), user_id) {
        (true, u) => u.map(|u| vec![u]),
        (false, Some(u)) if u != caller.user().id => return Err(ApiError::Forbidden),
        (false, _) => Some(vec![caller.user().id]),
    };
    let q = PatQuery {
        user_ids,
        active: p
            .one_of("state", &["active", "inactive"])?
            .map(|s| s == "active"),
        revoked: p.bool("revoked")?,
    };
    let (rows, total) =
        tokens::list_pats(&state.db.read, &q, page.offset(), page.per_page()).await?;
    Ok(paged(
        &state,
        &uri,
        page,
        total,
        rows.iter().map(pat_json).collect(),
    ))
}

/// A token the caller may manage (their own, or any for an admin), or 404.
async fn own_pat(state: &AppState, caller: &Caller, id: &str) -> ApiResult<pat::Model> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("Personal Access Token"))?;
    tokens::pat(&state.db.read, id)
        .await?
        .filter(|t| caller.is_admin() || t.user_id == caller.user().id)
        .ok_or(ApiError::NotFound("Personal Access Token"))
}

/// The token the caller authenticated with.
async fn self_pat(state: &AppState, caller: &Caller) -> ApiResult<pat::Model> {
    let id = caller
        .cred
        .pat_id
        .ok_or(ApiError::NotFound("Personal Access Token"))?;
    tokens::pat(&state.db.read, id)
        .await?
        .ok_or(ApiError::NotFound("Personal Access Token"))
}

/// `GET /personal_access_tokens/:id`.
async fn get_pat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_read()?;
    Ok(Json(pat_json(&own_pat(&state, &caller, &id).await?)))
}

/// `GET /personal_access_tokens/self`: the token used (any scope).
async fn get_self_pat(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(pat_json(&self_pat(&state, &caller).await?)))
}

async fn revoke(state: &AppState, t: &pat::Model) -> ApiResult<StatusCode> {
    if t.revoked {
        return Err(ApiError::BadRequest("Token already revoked".into()));
    }
    let txn = state.db.begin_write().await?;
    if !tokens::revoke_pat(&txn, t.id).await? {
        return Err(ApiError::BadRequest("Token already revoked".into()));
    }
    txn.commit().await?;
    tracing::info!(token.id = t.id, "revoked access token");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /personal_access_tokens/:id`: revoke, 204.
async fn revoke_pat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    let t = own_pat(&state, &caller, &id).await?;
    revoke(&state, &t).await
}

/// `DELETE /personal_access_tokens/self`: revoke the token used, 204.
async fn revoke_self_pat(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let t = self_pat(&state, &caller).await?;
    revoke(&state, &t).await
}

/// Revoke `old` and issue its successor (same user, name and scopes).
pub(super) async fn rotate(
    state: &AppState,
    old: &pat::Model,
    p: &Params,
) -> ApiResult<(pat::Model, String)> {
    if old.revoked {
        return Err(ApiError::BadRequest("Token already revoked".into()));
    }
    let expires_at = Some(expiry(p, next_week(), state.max_token_lifetime)?);
    let txn = state.db.begin_write().await?;
    // Conditional on the token still being live at write time: two concurrent rotations
    // of one token (say, its owner and whoever leaked it) yield one successor, not two.
    if !tokens::revoke_pat(&txn, old.id).await? {
        return Err(ApiError::BadRequest("Token already revoked".into()));
    }
    let scopes = split_scopes(&old.scopes);
    let new = issue(&txn, old.user_id, &old.name, &scopes, expires_at).await?;
    txn.commit().await?;
    tracing::info!(
        token.id = old.id,
        token.new_id = new.0.id,
        "rotated access token"
    );
    Ok(new)
}

fn created(row: &pat::Model, secret: String) -> Response {
    let body = with(pat_json(row), "token", json!(secret));
    (StatusCode::OK, Json(body)).into_response()
}

/// `POST /personal_access_tokens/:id/rotate`.
async fn rotate_pat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    caller.require_write()?;
    let old = own_pat(&state, &caller, &id).await?;
    let (row, secret) = rotate(&state, &old, &p).await?;
    Ok(created(&row, secret))
}

/// `POST /personal_access_tokens/self/rotate`.
async fn rotate_self_pat(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require_write()?;
    let old = self_pat(&state, &caller).await?;
    let (row, secret) = rotate(&state, &old, &p).await?;
    Ok(created(&row, secret))
}

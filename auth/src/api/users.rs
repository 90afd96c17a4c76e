//! `/user` and `/users`: the current user, and instance admins managing users. Also the
//! request and response helpers every identity endpoint shares: [`Params`] (query string
//! plus JSON or form body, as GitLab's Grape API reads them), [`paged`] and time formats.

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::Uri;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_db::entity::users;
use berth_db::users::{NewUser, UserQuery};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::pagination::PageParams;
use crate::secrets;
use crate::state::AppState;

/// Request parameters: the query string, then the body (JSON object or
/// `application/x-www-form-urlencoded`, where `key[]=` repeats build a list), body winning.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Map<String, Value>);

fn merge_form(map: &mut Map<String, Value>, raw: &[u8]) {
    for (k, v) in form_urlencoded::parse(raw) {
        if let Some(key) = k.strip_suffix("[]") {
            let entry = map
                .entry(key.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                items.push(Value::String(v.into_owned()));
            }
        } else {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
}

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let mut map = Map::new();
        if let Some(q) = req.uri().query() {
            merge_form(&mut map, q.as_bytes());
        }
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::BadRequest("400 Bad request - unreadable body".into()))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params(map));
        }
        if json || body.first() == Some(&b'{') {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(o)) => map.extend(o),
                _ => {
                    return Err(ApiError::BadRequest(
                        "400 Bad request - invalid JSON".into(),
                    ));
                }
            }
        } else {
            merge_form(&mut map, &body);
        }
        Ok(Params(map))
    }
}

impl Params {
    /// A text parameter (numbers and booleans as text); empty counts as absent.
    pub fn str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A required text parameter (`"name is missing"`).
    pub fn required(&self, key: &str) -> ApiResult<String> {
        self.str(key)
            .ok_or_else(|| ApiError::BadRequest(format!("{key} is missing")))
    }

    /// An integer parameter, given as a number or text.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        let invalid = || ApiError::BadRequest(format!("{key} is invalid"));
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(invalid),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
            Some(_) => Err(invalid()),
        }
    }

    /// A boolean parameter (`true`/`false`, `1`/`0`).
    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => Ok(Some(n.as_i64() != Some(0))),
            Some(Value::String(s)) => match s.as_str() {
                "" => Ok(None),
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(ApiError::BadRequest(format!("{key} is invalid"))),
            },
            Some(_) => Err(ApiError::BadRequest(format!("{key} is invalid"))),
        }
    }

    /// A list parameter: a JSON array, `key[]=` repeats, or comma-separated text.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let items: Vec<String> = match self.0.get(key)? {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Value::String(s) => s.split(',').map(|x| x.trim().to_owned()).collect(),
            _ => return None,
        };
        Some(items.into_iter().filter(|s| !s.is_empty()).collect())
    }

    /// A date (`YYYY-MM-DD`, ending at midnight UTC of that date, as GitLab) or an RFC 3339
    /// time. `Some(None)`: given as null or empty (clear it).
    pub fn date(&self, key: &str) -> ApiResult<Option<Option<DateTime<Utc>>>> {
        let invalid = || ApiError::BadRequest(format!("{key} is invalid"));
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
            Some(Value::String(s)) => {
                if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    Ok(Some(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc())))
                } else {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| Some(Some(t.with_timezone(&Utc))))
                        .map_err(|_| invalid())
                }
            }
            Some(_) => Err(invalid()),
        }
    }

    /// `page` and `per_page`.
    pub fn page(&self) -> ApiResult<PageParams> {
        let positive = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        Ok(PageParams {
            page: positive(self.int("page")?),
            per_page: positive(self.int("per_page")?),
        })
    }
}

/// The request URI as the client sent it (`/api/v4/…`): the nest strips its prefix, and
/// pagination links need the full path.
#[derive(Debug, Clone)]
pub struct ApiUri(pub Uri);

impl<S: Send + Sync> FromRequestParts<S> for ApiUri {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let uri = &parts.uri;
        if uri.path().starts_with("/api/v4") {
            return Ok(ApiUri(uri.clone()));
        }
        let full = match uri.query() {
            Some(q) => format!("/api/v4{}?{q}", uri.path()),
            None => format!("/api/v4{}", uri.path()),
        };
        Ok(ApiUri(full.parse().unwrap_or_else(|_| uri.clone())))
    }
}

/// A page of a listing with GitLab's pagination headers.
pub fn paged(
    state: &AppState,
    uri: &ApiUri,
    page: PageParams,
    total: u64,
    items: Vec<Value>,
) -> Response {
    let headers = page.headers(&state.cfg.auth_url, &uri.0, total);
    (headers, Json(Value::Array(items))).into_response()
}

/// A page of an in-memory listing.
pub fn paged_vec(state: &AppState, uri: &ApiUri, page: PageParams, all: Vec<Value>) -> Response {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(page.per_page()).unwrap_or(usize::MAX))
        .collect();
    paged(state, uri, page, total, items)
}

/// GitLab's time format (`2024-05-01T12:00:00.000Z`).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An optional time, or null.
pub fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time(t)))
}

/// An optional expiry date (`YYYY-MM-DD`), or null.
pub fn opt_date(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.date_naive().format("%Y-%m-%d").to_string())
    })
}

/// A path segment in the registry's name grammar (`[a-z0-9]+([._-][a-z0-9]+)*`).
pub fn valid_path(segment: &str) -> bool {
    !segment.contains('/') && berth_core::RepoName::parse(segment).is_ok()
}

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
    uri: ApiUri,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require_read()?;
    let page = p.page()?;
    let mut q = UserQuery {
        username: p.str("username"),
        search: p.str("search"),
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
    let hash = match p.str("password") {
        Some(pw) if pw.len() < 8 => {
            return Err(ApiError::BadRequest(
                "password is too short (minimum is 8 characters)".into(),
            ));
        }
        Some(pw) => Some(
            tokio::task::spawn_blocking(move || secrets::hash_password(&pw))
                .await
                .map_err(|e| ApiError::Internal(e.into()))??,
        ),
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

/// `DELETE /users/:id` (admin): 204.
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let user = find_user(&state, &id).await?;
    let txn = state.db.begin_write().await?;
    berth_db::users::delete(&txn, user.id).await?;
    txn.commit().await?;
    tracing::info!(user.id = user.id, "deleted user");
    Ok(StatusCode::NO_CONTENT)
}

//! `POST /oauth/token`: GitLab's OAuth2 resource-owner password grant, so an operator gets
//! an API token without the web UI, and its `refresh_token` grant. The answer's
//! `access_token` (`boat-…`) works as `Authorization: Bearer` on `/api/v4` for two hours.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use berth_db::entity::oauth_access_tokens;
use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

use crate::identity::{Credential, split_scopes};
use crate::jwt::{self, TokenError};
use crate::secrets::{self, OAUTH_PREFIX, REFRESH_PREFIX};
use crate::state::AppState;

/// API token lifetime (GitLab's default).
const ACCESS_TTL_SECS: i64 = 7200;

/// Scopes an API token may be asked for.
const SCOPES: &[&str] = &[
    "api",
    "read_api",
    "read_user",
    "read_registry",
    "write_registry",
];

/// The `/oauth/token` route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/oauth/token", post(post_oauth_token))
}

fn invalid_grant() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "error": "invalid_grant",
            "error_description": "The provided authorization grant is invalid, expired, revoked, \
                does not match the redirection URI used in the authorization request, or was \
                issued to another client."
        })),
    )
        .into_response()
}

/// Form or JSON fields.
async fn fields(req: Request) -> Result<Vec<(String, String)>, TokenError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| TokenError::BadRequest("body too large"))?;
    if json {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body).map_err(|_| TokenError::BadRequest("invalid JSON"))?;
        let mut out = Vec::with_capacity(v.len());
        for (k, v) in v {
            use serde_json::Value;
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s,
                // Grape's coercion of a scalar to a text field.
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                // A list or an object where the grant takes text is refused, never read as
                // absent (a `scope` list would otherwise fall back to the default scope).
                Value::Array(_) | Value::Object(_) => match invalid_field(&k) {
                    Some(message) => return Err(TokenError::BadRequest(message)),
                    None => continue,
                },
            };
            out.push((k, text));
        }
        Ok(out)
    } else {
        Ok(form_urlencoded::parse(&body).into_owned().collect())
    }
}

/// GitLab's message for a field of the grant given with the wrong type; `None` for a field
/// the grant does not read (ignored, as GitLab ignores undeclared parameters).
fn invalid_field(name: &str) -> Option<&'static str> {
    Some(match name {
        "grant_type" => "grant_type is invalid",
        "username" => "username is invalid",
        "password" => "password is invalid",
        "scope" => "scope is invalid",
        "refresh_token" => "refresh_token is invalid",
        _ => return None,
    })
}

/// `POST /oauth/token` with `grant_type=password` or `grant_type=refresh_token`.
#[tracing::instrument(skip_all)]
async fn post_oauth_token(State(state): State<AppState>, req: Request) -> Response {
    match handle(&state, req).await {
        Ok(r) => r,
        Err(TokenError::Unauthorized) => invalid_grant(),
        Err(e) => e.into_response(),
    }
}

async fn handle(state: &AppState, req: Request) -> Result<Response, TokenError> {
    let addr = jwt::client_addr(state, &req);
    let form = fields(req).await?;
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let now = Utc::now();
    let (user, scopes) = match field("grant_type") {
        Some("password") => {
            let (Some(username), Some(password)) = (field("username"), field("password")) else {
                return Err(TokenError::BadRequest("username and password are required"));
            };
            // A password here, never a token (GitLab's password grant).
            if password.starts_with(secrets::PAT_PREFIX)
                || password.starts_with(secrets::DEPLOY_PREFIX)
            {
                return Err(TokenError::Unauthorized);
            }
            let Credential::User(u) = jwt::login(state, addr, username, password).await? else {
                return Err(TokenError::Unauthorized);
            };
            let scopes = split_scopes(&field("scope").unwrap_or("api").replace(' ', ","));
            if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
                return Err(TokenError::BadRequest("invalid scope"));
            }
            (u.user, scopes)
        }
        Some("refresh_token") => {
            let Some(token) = field("refresh_token") else {
                return Err(TokenError::BadRequest("refresh_token is required"));
            };
            let digest = secrets::digest(token);
            let row = oauth_access_tokens::Entity::find()
                .filter(oauth_access_tokens::Column::RefreshDigest.eq(&digest))
                .one(&state.db.read)
                .await?
                .filter(|r| secrets::same(&r.refresh_digest, &digest) && !r.revoked)
                .ok_or(TokenError::Unauthorized)?;
            let user = berth_db::users::by_id(&state.db.read, row.user_id)
                .await?
                .filter(|u| u.state == "active")
                .ok_or(TokenError::Unauthorized)?;
            // A refresh token lives as long as registry refresh tokens do.
            if row.created_at + chrono::Duration::from_std(state.refresh_ttl)? <= now {
                return Err(TokenError::Unauthorized);
            }
            // Refreshing revokes the pair it replaces, at most once: of two concurrent
            // refreshes with one token only the one whose update lands gets a new pair.
            let txn = state.db.begin_write().await?;
            let revoked = oauth_access_tokens::Entity::update_many()
                .col_expr(oauth_access_tokens::Column::Revoked, Expr::value(true))
                .filter(oauth_access_tokens::Column::Id.eq(row.id))
                .filter(oauth_access_tokens::Column::Revoked.eq(false))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            if revoked.rows_affected != 1 {
                return Err(TokenError::Unauthorized);
            }
            (user, split_scopes(&row.scopes))
        }
        _ => return Err(TokenError::BadRequest("unsupported grant_type")),
    };
    let access = secrets::generate(OAUTH_PREFIX);
    let refresh = secrets::generate(REFRESH_PREFIX);
    let txn = state.db.begin_write().await?;
    oauth_access_tokens::ActiveModel {
        user_id: Set(user.id),
        token_digest: Set(secrets::digest(&access)),
        refresh_digest: Set(secrets::digest(&refresh)),
        scopes: Set(scopes.join(",")),
        expires_at: Set(now + chrono::Duration::seconds(ACCESS_TTL_SECS)),
        revoked: Set(false),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    tracing::info!(user.id = user.id, "api token issued");
    Ok(axum::Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL_SECS,
        "refresh_token": refresh,
        "scope": scopes.join(" "),
        "created_at": now.timestamp(),
    }))
    .into_response())
}

//! The management API's errors in GitLab's JSON form (`{"message": …}`), mapped in one
//! place so handlers use `?`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with GitLab's message (`"name is missing"`, `"visibility does not have a valid value"`).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or bad credentials.
    #[error("401 Unauthorized")]
    Unauthorized,
    /// 403: authenticated but not allowed (including a token lacking the scope).
    #[error("403 Forbidden")]
    Forbidden,
    /// 403 with a reason (`"tag is immutable (pattern …)"`).
    #[error("{0}")]
    ForbiddenMessage(String),
    /// 404 naming the missing thing (`"Project"` → `404 Project Not Found`).
    #[error("404 {0} Not Found")]
    NotFound(&'static str),
    /// 409 (`"Username has already been taken"`).
    #[error("{0}")]
    Conflict(String),
    /// 500: logged once here, a generic message to the client.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::ForbiddenMessage(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "api request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match &self {
            ApiError::Internal(_) => "500 Internal Server Error".to_owned(),
            other => other.to_string(),
        };
        (status, Json(json!({ "message": message }))).into_response()
    }
}

/// API result.
pub type ApiResult<T> = Result<T, ApiError>;

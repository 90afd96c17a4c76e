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
    /// 503: the database cannot be reached, or a write kept losing races; retry shortly.
    #[error("503 Service Unavailable")]
    Unavailable,
    /// 500: logged once here, a generic message to the client.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        berth_db::Error::from(e).into()
    }
}

impl From<berth_db::Error> for ApiError {
    fn from(e: berth_db::Error) -> Self {
        use berth_db::ErrorKind;
        match e.kind() {
            ErrorKind::NotFound => ApiError::NotFound("Record"),
            // A duplicate or a write that collided with a concurrent change: GitLab answers
            // such requests 409 ("has already been taken").
            ErrorKind::UniqueConflict => {
                tracing::info!(error = %e, "write conflicts with an existing row");
                ApiError::Conflict("409 Conflict: already exists".into())
            }
            ErrorKind::ForeignKeyConflict => {
                tracing::info!(error = %e, "write conflicts with a concurrent change");
                ApiError::Conflict("409 Conflict: changed concurrently, retry".into())
            }
            ErrorKind::Retryable | ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "database unavailable or contended");
                ApiError::Unavailable
            }
            ErrorKind::Other => ApiError::Internal(e.into()),
        }
    }
}

impl From<berth_content::ContentError> for ApiError {
    fn from(e: berth_content::ContentError) -> Self {
        use berth_content::{ContentError, Protected};
        match e {
            ContentError::ManifestUnknown => ApiError::NotFound("Manifest"),
            ContentError::TagUnknown(_) => ApiError::NotFound("Tag"),
            ContentError::TagImmutable {
                tag,
                pattern,
                action,
            } => ApiError::ForbiddenMessage(match action {
                Protected::DeleteManifest => format!(
                    "tag {tag} is immutable (pattern {pattern}), so its manifest cannot be deleted"
                ),
                _ => format!("tag is immutable (pattern {pattern})"),
            }),
            ContentError::ManifestReferenced => ApiError::Conflict(
                "the manifest is referenced by an index; delete the index first".into(),
            ),
            ContentError::BlobInUse { .. } => ApiError::Conflict(e.to_string()),
            ContentError::ReferenceUnknown { .. } | ContentError::QuotaExceeded { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            ContentError::Db(e) => e.into(),
        }
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
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "api request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match &self {
            ApiError::Internal(_) => "500 Internal Server Error".to_owned(),
            other => other.to_string(),
        };
        let mut resp = (status, Json(json!({ "message": message }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}

/// API result.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use berth_db::ErrorKind;

    #[test]
    fn every_database_error_kind_has_its_answer() {
        let cases = [
            (ErrorKind::NotFound, 404, false),
            (ErrorKind::UniqueConflict, 409, false),
            (ErrorKind::ForeignKeyConflict, 409, false),
            (ErrorKind::Retryable, 503, true),
            (ErrorKind::Unavailable, 503, true),
            (ErrorKind::Other, 500, false),
        ];
        for (kind, status, retry_after) in cases {
            let resp = ApiError::from(berth_db::Error::new(kind, "test")).into_response();
            assert_eq!(resp.status().as_u16(), status, "{kind:?}");
            assert_eq!(
                resp.headers().contains_key(axum::http::header::RETRY_AFTER),
                retry_after,
                "{kind:?}"
            );
        }
    }
}

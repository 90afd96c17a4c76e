//! The one error type of the `/v2/` API: an OCI error code, a message, an optional detail
//! and, for 401s, the challenge. Infrastructure errors map into it here and nowhere else.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_blobstore::StoreError;
use berth_core::ErrorCode;
use sea_orm::DbErr;

/// An error answered in the spec's JSON form.
#[derive(Debug)]
pub struct RegistryError {
    /// The code (fixes the status).
    pub code: ErrorCode,
    message: Cow<'static, str>,
    detail: Option<serde_json::Value>,
    challenge: Option<String>,
}

/// Result alias for handlers and services.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode) -> Self {
        RegistryError {
            code,
            message: Cow::Borrowed(code.message()),
            detail: None,
            challenge: None,
        }
    }

    /// Replace the message with one a person can act on.
    pub fn message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    /// Attach a machine-readable detail.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// A 401 carrying a `WWW-Authenticate` challenge.
    pub fn unauthorized(challenge: String, message: &'static str) -> Self {
        RegistryError {
            code: ErrorCode::Unauthorized,
            message: Cow::Borrowed(message),
            detail: None,
            challenge: Some(challenge),
        }
    }
}

impl From<ErrorCode> for RegistryError {
    fn from(code: ErrorCode) -> Self {
        RegistryError::new(code)
    }
}

impl From<DbErr> for RegistryError {
    fn from(err: DbErr) -> Self {
        // A unique or foreign-key violation here is a lost race with a concurrent write
        // (two pushes creating one tag, a GC worker deleting a manifest a write was about
        // to reference): answered like a conflict, which the write's retry loop runs again
        // against the winner's committed state.
        let lost_race = berth_db::is_unique_violation(&err) || berth_db::is_fk_violation(&err);
        // Logged once here; the client gets a generic message.
        if lost_race {
            tracing::warn!(error = %err, "write lost a race; retrying");
        } else {
            tracing::error!(error = %err, "database error");
        }
        let unavailable = matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
            || berth_db::is_retryable(&err)
            || lost_race;
        RegistryError::new(if unavailable {
            ErrorCode::Unavailable
        } else {
            ErrorCode::Internal
        })
    }
}

impl From<StoreError> for RegistryError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ErrorCode::BlobUnknown.into(),
            StoreError::UploadNotFound | StoreError::InvalidUploadId => {
                ErrorCode::BlobUploadUnknown.into()
            }
            StoreError::OffsetMismatch { expected, got } => {
                RegistryError::new(ErrorCode::RangeInvalid).message(format!(
                    "upload is at offset {expected}, chunk starts at {got}"
                ))
            }
            StoreError::RangeNotSatisfiable => ErrorCode::RangeInvalid.into(),
            StoreError::Io(e) => {
                if let Some(size) = crate::service::body::size_mismatch(&e) {
                    return RegistryError::new(ErrorCode::SizeInvalid).message(size);
                }
                // A client that went away or stalled mid-body: a client error (the upload
                // was rolled back to where it was, so it can be resumed), not a server fault.
                if let Some(reason) = crate::service::body::body_unreadable(&e) {
                    tracing::debug!(error = %e, "request body cut short");
                    return RegistryError::new(ErrorCode::BlobUploadInvalid).message(format!(
                        "{reason}; the upload keeps the bytes it had before this request"
                    ));
                }
                tracing::error!(error = %e, "blob store error");
                ErrorCode::Internal.into()
            }
        }
    }
}

impl From<anyhow::Error> for RegistryError {
    fn from(err: anyhow::Error) -> Self {
        tracing::error!(error = %err, "internal error");
        ErrorCode::Internal.into()
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut entry = serde_json::json!({"code": self.code.as_str(), "message": self.message});
        if let Some(d) = self.detail {
            entry["detail"] = d;
        }
        let body =
            serde_json::to_vec(&serde_json::json!({ "errors": [entry] })).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        resp
    }
}

//! The one error type of the `/v2/` API: an OCI error code, a message, an optional detail
//! and, for 401s, the challenge. Infrastructure errors map into it here and nowhere else.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_blobstore::StoreError;
use berth_content::{ContentError, Missing, Protected};
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
        berth_db::Error::from(err).into()
    }
}

impl From<berth_db::Error> for RegistryError {
    fn from(err: berth_db::Error) -> Self {
        use berth_db::ErrorKind;
        // Logged once here; the client gets the kind's generic message.
        match err.kind() {
            ErrorKind::NotFound => RegistryError::new(ErrorCode::NameUnknown),
            // A conflict that survived the content library's retries: the request
            // collided with a concurrent change and loses to it.
            ErrorKind::UniqueConflict | ErrorKind::ForeignKeyConflict => {
                tracing::warn!(error = %err, "write conflicts with a concurrent change");
                RegistryError::new(ErrorCode::Conflict)
            }
            ErrorKind::Retryable | ErrorKind::Unavailable => {
                tracing::warn!(error = %err, "database unavailable or contended");
                RegistryError::new(ErrorCode::Unavailable)
            }
            ErrorKind::Other => {
                tracing::error!(error = %err, "database error");
                RegistryError::new(ErrorCode::Internal)
            }
        }
    }
}

impl From<ContentError> for RegistryError {
    fn from(err: ContentError) -> Self {
        use crate::service::manifests::{immutable_error, quota_error};
        match err {
            ContentError::ManifestUnknown => ErrorCode::ManifestUnknown.into(),
            ContentError::TagUnknown(tag) => {
                RegistryError::new(ErrorCode::ManifestUnknown).message(format!("tag {tag} not found"))
            }
            ContentError::TagImmutable { tag, pattern, action } => {
                let what = match action {
                    Protected::Overwrite => "overwritten".to_owned(),
                    Protected::Delete => "deleted".to_owned(),
                    Protected::DeleteManifest => {
                        "deleted, so the manifest cannot be deleted either".to_owned()
                    }
                };
                immutable_error(&tag, &pattern, &what)
            }
            ContentError::ManifestReferenced => ErrorCode::ManifestReferenced.into(),
            ContentError::ReferenceUnknown { digest, what } => {
                let message = match what {
                    Missing::Blob => format!("blob {digest} is not in this repository; push it first"),
                    Missing::Manifest => {
                        format!("manifest {digest} is not in this repository; push it first")
                    }
                    Missing::Collected => {
                        "a referenced blob or manifest was garbage-collected; push it again".to_owned()
                    }
                };
                let e = RegistryError::new(ErrorCode::ManifestBlobUnknown).message(message);
                if digest.is_empty() { e } else { e.detail(serde_json::json!({ "digest": digest })) }
            }
            ContentError::QuotaExceeded { limit, usage } => quota_error(&limit, usage),
            ContentError::BlobInUse { digest, manifests } => RegistryError::new(ErrorCode::BlobReferenced)
                .message(format!(
                    "blob {digest} is referenced by {manifests} manifest(s) of this repository; delete them first"
                ))
                .detail(serde_json::json!({ "digest": digest, "manifests": manifests })),
            ContentError::Db(e) => e.into(),
        }
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
        if self.code == ErrorCode::Unavailable {
            // Only an unreachable database or exhausted retries get here: clients may
            // come back shortly.
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_db::ErrorKind;

    fn answer(kind: ErrorKind) -> Response {
        RegistryError::from(berth_db::Error::new(kind, "test")).into_response()
    }

    async fn code(resp: Response) -> String {
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        v["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn every_database_error_kind_has_its_answer() {
        let cases = [
            (ErrorKind::NotFound, 404, "NAME_UNKNOWN", false),
            (ErrorKind::UniqueConflict, 409, "CONFLICT", false),
            (ErrorKind::ForeignKeyConflict, 409, "CONFLICT", false),
            (ErrorKind::Retryable, 503, "UNAVAILABLE", true),
            (ErrorKind::Unavailable, 503, "UNAVAILABLE", true),
            (ErrorKind::Other, 500, "UNKNOWN", false),
        ];
        for (kind, status, oci, retry_after) in cases {
            let resp = answer(kind);
            assert_eq!(resp.status().as_u16(), status, "{kind:?}");
            assert_eq!(
                resp.headers().contains_key(header::RETRY_AFTER),
                retry_after,
                "{kind:?}"
            );
            assert_eq!(code(resp).await, oci, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn content_refusals_have_their_answers() {
        let cases = [
            (ContentError::ManifestUnknown, 404, "MANIFEST_UNKNOWN"),
            (ContentError::ManifestReferenced, 409, "MANIFEST_REFERENCED"),
            (
                ContentError::BlobInUse {
                    digest: "sha256:x".into(),
                    manifests: 1,
                },
                409,
                "BLOB_REFERENCED",
            ),
            (
                ContentError::TagImmutable {
                    tag: "v1".into(),
                    pattern: "^v".into(),
                    action: Protected::Delete,
                },
                409,
                "TAG_IMMUTABLE",
            ),
            (
                ContentError::ReferenceUnknown {
                    digest: String::new(),
                    what: Missing::Collected,
                },
                400,
                "MANIFEST_BLOB_UNKNOWN",
            ),
        ];
        for (err, status, oci) in cases {
            let resp = RegistryError::from(err).into_response();
            assert_eq!(resp.status().as_u16(), status, "{oci}");
            assert_eq!(code(resp).await, oci);
        }
    }
}

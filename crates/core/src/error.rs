//! The registry's error codes: the OCI distribution-spec table plus Berth's own codes,
//! each with its fixed HTTP status.

/// One error code of the `/v2/` API. The registry turns it into
/// `{"errors":[{"code","message","detail"}]}` with [`ErrorCode::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content.
    DigestInvalid,
    /// Blob unknown to registry (referenced by a manifest).
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown.
    ManifestUnknown,
    /// The manifest is a child of an index and cannot be deleted first (GitLab's code).
    ManifestReferenced,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// Requested range not satisfiable (upload offset or blob range).
    RangeInvalid,
    /// A listing's `n` is not a non-negative integer (Distribution's code).
    PaginationNumberInvalid,
    /// Authentication required.
    Unauthorized,
    /// Requested access to the resource is denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    TooManyRequests,
    /// Berth: the tag is protected by an immutability rule.
    TagImmutable,
    /// Berth: the push would exceed a storage limit.
    QuotaExceeded,
    /// Berth: the project's registry is disabled.
    RegistryDisabled,
    /// Berth: the blob is still referenced by a manifest of the repository.
    BlobReferenced,
    /// Berth: the request collided with a concurrent change to the same content and lost.
    Conflict,
    /// The service cannot reach its database or store right now.
    Unavailable,
    /// Anything else; the detail is logged, never sent.
    Internal,
}

impl ErrorCode {
    /// The code string of the JSON body.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "BLOB_UNKNOWN",
            BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            DigestInvalid => "DIGEST_INVALID",
            ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid => "MANIFEST_INVALID",
            ManifestUnknown => "MANIFEST_UNKNOWN",
            ManifestReferenced => "MANIFEST_REFERENCED",
            NameInvalid => "NAME_INVALID",
            NameUnknown => "NAME_UNKNOWN",
            SizeInvalid => "SIZE_INVALID",
            RangeInvalid => "RANGE_INVALID",
            PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Unauthorized => "UNAUTHORIZED",
            Denied => "DENIED",
            Unsupported => "UNSUPPORTED",
            TooManyRequests => "TOOMANYREQUESTS",
            TagImmutable => "TAG_IMMUTABLE",
            QuotaExceeded => "QUOTA_EXCEEDED",
            RegistryDisabled => "REGISTRY_DISABLED",
            BlobReferenced => "BLOB_REFERENCED",
            Conflict => "CONFLICT",
            Unavailable => "UNAVAILABLE",
            Internal => "UNKNOWN",
        }
    }

    /// The HTTP status the spec (or Distribution, where the spec is silent) gives the code.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BlobUnknown | BlobUploadUnknown | ManifestUnknown | NameUnknown => 404,
            BlobUploadInvalid
            | DigestInvalid
            | ManifestBlobUnknown
            | ManifestInvalid
            | NameInvalid
            | SizeInvalid
            | PaginationNumberInvalid => 400,
            RangeInvalid => 416,
            Unauthorized => 401,
            Denied | RegistryDisabled => 403,
            Unsupported => 405,
            TooManyRequests => 429,
            // Distribution answers a tag it will not overwrite with 400-class errors; an
            // immutable tag is a conflict with existing state.
            TagImmutable | ManifestReferenced | BlobReferenced | Conflict => 409,
            // Quota exhaustion is a refusal, not a malformed request.
            QuotaExceeded => 403,
            Unavailable => 503,
            Internal => 500,
        }
    }

    /// The default human message.
    pub fn message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "blob unknown to registry",
            BlobUploadInvalid => "blob upload invalid",
            BlobUploadUnknown => "blob upload unknown to registry",
            DigestInvalid => "provided digest did not match uploaded content",
            ManifestBlobUnknown => "manifest references a manifest or blob unknown to registry",
            ManifestInvalid => "manifest invalid",
            ManifestUnknown => "manifest unknown",
            ManifestReferenced => "the manifest is referenced by an index; delete the index first",
            NameInvalid => "invalid repository name",
            NameUnknown => "repository name not known to registry",
            SizeInvalid => "provided length did not match content length",
            RangeInvalid => "invalid content range",
            PaginationNumberInvalid => "invalid number of results requested",
            Unauthorized => "authentication required",
            Denied => "requested access to the resource is denied",
            Unsupported => "the operation is unsupported",
            TooManyRequests => "too many requests",
            TagImmutable => "the tag is immutable and cannot be overwritten or deleted",
            QuotaExceeded => "storage limit exceeded",
            RegistryDisabled => "the container registry is disabled for this project",
            BlobReferenced => {
                "the blob is referenced by a manifest of this repository; delete the manifest first"
            }
            Conflict => "the request conflicts with a concurrent change; retry it",
            Unavailable => "service temporarily unavailable, retry later",
            Internal => "internal server error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode::*;

    #[test]
    fn statuses_follow_the_spec_table() {
        let table = [
            (BlobUnknown, "BLOB_UNKNOWN", 404),
            (BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400),
            (BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404),
            (DigestInvalid, "DIGEST_INVALID", 400),
            (ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", 400),
            (ManifestInvalid, "MANIFEST_INVALID", 400),
            (ManifestUnknown, "MANIFEST_UNKNOWN", 404),
            (NameInvalid, "NAME_INVALID", 400),
            (NameUnknown, "NAME_UNKNOWN", 404),
            (SizeInvalid, "SIZE_INVALID", 400),
            (PaginationNumberInvalid, "PAGINATION_NUMBER_INVALID", 400),
            (Unauthorized, "UNAUTHORIZED", 401),
            (Denied, "DENIED", 403),
            (Unsupported, "UNSUPPORTED", 405),
            (TooManyRequests, "TOOMANYREQUESTS", 429),
            (TagImmutable, "TAG_IMMUTABLE", 409),
            (QuotaExceeded, "QUOTA_EXCEEDED", 403),
            (RegistryDisabled, "REGISTRY_DISABLED", 403),
            (BlobReferenced, "BLOB_REFERENCED", 409),
            (Conflict, "CONFLICT", 409),
            (Unavailable, "UNAVAILABLE", 503),
        ];
        for (code, s, status) in table {
            assert_eq!(code.as_str(), s);
            assert_eq!(code.status(), status, "{s}");
            assert!(!code.message().is_empty());
        }
    }
}

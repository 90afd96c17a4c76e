//! The error every [`crate::BlobStore`] operation returns.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No committed blob has that digest.
    #[error("blob not found")]
    NotFound,
    /// No upload has that id.
    #[error("upload not found")]
    UploadNotFound,
    /// An append named an offset other than the upload's current size.
    #[error("upload offset mismatch: expected {expected}, got {got}")]
    OffsetMismatch {
        /// The upload's actual size.
        expected: u64,
        /// The offset the caller gave.
        got: u64,
    },
    /// The upload id is not a canonical UUID.
    #[error("invalid upload id")]
    InvalidUploadId,
    /// The requested range lies outside the blob.
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    /// The storage medium failed.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result of a store operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Turn a failed blocking task (a panic or runtime shutdown) into an I/O error, since to the
/// caller it means the operation's outcome is unknown, like a failed write.
pub(crate) fn join_error(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(e)
}

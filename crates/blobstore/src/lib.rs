//! Content-addressed blob storage for Berth: committed blobs keyed by digest, and uploads in
//! progress that become blobs when the registry has verified their hash.
//!
//! The store only moves bytes. Hashing happens in the registry (it wraps the request
//! stream), and metadata (which repository links which blob, upload offsets) lives in SQL.
//! [`FsBlobStore`] keeps everything on a local filesystem; [`open_store`] picks a backend
//! from `BERTH_STORAGE_URL`.

mod error;
mod fs;
mod open;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use std::fmt;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use berth_core::Digest;

pub use error::{Result, StoreError};
pub use fs::FsBlobStore;
pub use open::{OpenError, open_store};

/// A body of bytes flowing into or out of the store. An `Err` item ends the stream.
pub type ByteStream =
    Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

/// What [`BlobStore::open`] returns: how to send the bytes.
pub enum BlobBody {
    /// A local file already positioned at `offset`, of which exactly `len` bytes are to be
    /// sent. Handing out the file (rather than a stream) lets the HTTP layer use zero-copy
    /// transfers such as `sendfile`.
    File {
        /// The open blob file; its cursor is at `offset`.
        file: tokio::fs::File,
        /// Position of the first byte to send.
        offset: u64,
        /// Number of bytes to send from `offset`.
        len: u64,
    },
    /// A generic stream of exactly `len` bytes.
    Stream {
        /// The bytes.
        stream: ByteStream,
        /// Number of bytes the stream yields.
        len: u64,
    },
}

impl BlobBody {
    /// Number of bytes this body carries.
    pub fn len(&self) -> u64 {
        match self {
            BlobBody::File { len, .. } | BlobBody::Stream { len, .. } => *len,
        }
    }

    /// Whether the body carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// Written by hand because a boxed stream has no `Debug`; the length is what matters in logs.
impl fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobBody::File { offset, len, .. } => f
                .debug_struct("File")
                .field("offset", offset)
                .field("len", len)
                .finish_non_exhaustive(),
            BlobBody::Stream { len, .. } => f
                .debug_struct("Stream")
                .field("len", len)
                .finish_non_exhaustive(),
        }
    }
}

/// A place that keeps blob bytes. Every backend must pass `testsuite::run_all` (enabled by
/// the `testsuite` feature).
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Short name for logs and metrics (`"filesystem"`, `"s3"`).
    fn kind(&self) -> &'static str;

    /// Size of a committed blob, `None` if absent.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Open a committed blob. `range` is `Some((start, end_inclusive))` for an HTTP `Range`
    /// request; an `end` beyond the blob is clamped to its last byte.
    ///
    /// Errors: [`StoreError::NotFound`] if absent; [`StoreError::RangeNotSatisfiable`] if
    /// `start >= size` or `start > end`.
    async fn open(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobBody>;

    /// Delete a committed blob's bytes. Idempotent: `Ok` if already absent.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Every committed digest (for offline consistency checks).
    async fn list(&self) -> Result<Vec<Digest>>;

    /// When a committed blob's bytes were last written, `None` if absent. Offline checks use
    /// it as a grace period: the registry commits bytes before it inserts the blob's row, so
    /// a young file without a row may be an upload finishing right now. On the filesystem
    /// this is the file's mtime, which a commit (a rename) carries over from the upload's
    /// last append: it is never later than the commit.
    async fn modified(&self, digest: &Digest) -> Result<Option<SystemTime>>;

    /// Create an empty upload with this id. Ids are canonical lowercase hyphenated UUIDs
    /// made by the caller; anything else is [`StoreError::InvalidUploadId`], which also
    /// keeps ids from naming paths outside the store.
    async fn create_upload(&self, id: &str) -> Result<()>;

    /// Append `body` to the upload, whose current size must equal `offset` (else
    /// [`StoreError::OffsetMismatch`] and nothing is written). Returns the new total size.
    /// An append at offset 0 creates the upload if [`BlobStore::create_upload`] was never
    /// called: callers that track sessions elsewhere need not touch the store until bytes
    /// arrive.
    ///
    /// The body is streamed, never held in memory whole. If the body yields an error, or
    /// writing fails, or the returned future is dropped midway, the upload is truncated back
    /// to `offset`: a failed append changes nothing.
    async fn append_upload(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64>;

    /// Current size of an upload's data ([`StoreError::UploadNotFound`] if absent).
    async fn upload_size(&self, id: &str) -> Result<u64>;

    /// Read back an upload's bytes, so a process that did not see the upload's chunks can
    /// hash them.
    async fn read_upload(&self, id: &str) -> Result<ByteStream>;

    /// Make the upload's bytes the committed blob `digest` (the caller has verified the
    /// hash), then remove the upload.
    ///
    /// Atomic: the blob is never visible under its digest with partial content. Durable:
    /// once this returns the blob survives a crash. If the blob already exists the upload
    /// is just dropped.
    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<()>;

    /// Store a small blob whose bytes are in memory and whose digest the caller verified:
    /// atomic and durable like [`BlobStore::commit_upload`], and a no-op if the blob exists.
    async fn put_blob(&self, digest: &Digest, bytes: bytes::Bytes) -> Result<()>;

    /// Remove an upload. Idempotent: `Ok` if already absent.
    async fn delete_upload(&self, id: &str) -> Result<()>;

    /// Ids of uploads whose last modification is at least `older_than` ago (for purge jobs).
    async fn stale_uploads(&self, older_than: Duration) -> Result<Vec<String>>;
}

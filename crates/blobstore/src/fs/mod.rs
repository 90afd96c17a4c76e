//! [`FsBlobStore`]: blobs and uploads as plain files under one root directory.
//!
//! Layout: committed blobs at `<root>/blobs/<alg>/<first 2 hex>/<hex>`, uploads at
//! `<root>/uploads/<id>` (one data file each). A commit renames the upload file into place,
//! so a blob path only ever names complete content.

mod append;
mod disk;
mod locks;
#[cfg(test)]
mod tests;

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use berth_core::Digest;
use tokio::io::AsyncSeekExt;

use self::append::Appender;
use self::locks::UploadLocks;
use crate::error::join_error;
use crate::{BlobBody, BlobStore, ByteStream, Result, StoreError};

/// Read size for streaming an upload back: large enough that syscalls are not the
/// bottleneck when the registry re-hashes gigabytes.
const READ_CHUNK: usize = 256 * 1024;

/// A [`BlobStore`] on a local (or mounted) filesystem.
pub struct FsBlobStore {
    root: PathBuf,
    blobs: PathBuf,
    uploads: PathBuf,
    locks: Arc<UploadLocks>,
}

impl FsBlobStore {
    /// Open the store at `root`, creating `root/blobs` and `root/uploads` if missing.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let blobs = root.join("blobs");
        let uploads = root.join("uploads");
        let (b, u) = (blobs.clone(), uploads.clone());
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            std::fs::create_dir_all(&b)?;
            std::fs::create_dir_all(&u)?;
            // Make the two directories themselves durable; commits rely on them existing.
            if let Some(parent) = b.parent() {
                disk::sync_dir(parent)?;
            }
            Ok(())
        })
        .await
        .map_err(join_error)??;
        Ok(FsBlobStore {
            root,
            blobs,
            uploads,
            locks: Arc::default(),
        })
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        // Digest guarantees at least 64 hex characters; the fallback only avoids a panic path.
        let prefix = hex.get(..2).unwrap_or(hex);
        self.blobs
            .join(digest.algorithm().as_str())
            .join(prefix)
            .join(hex)
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf> {
        if valid_upload_id(id) {
            Ok(self.uploads.join(id))
        } else {
            Err(StoreError::InvalidUploadId)
        }
    }
}

/// Whether `id` is a canonical (lowercase, hyphenated) UUID. Being that strict means an id
/// can never contain a path separator or `..`, and one upload has exactly one spelling.
pub(crate) fn valid_upload_id(id: &str) -> bool {
    id.len() == 36
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
        && uuid::Uuid::try_parse(id).is_ok()
}

/// Map "file not found" to `missing`, anything else to an I/O error.
fn not_found_as(e: io::Error, missing: StoreError) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        missing
    } else {
        StoreError::Io(e)
    }
}

/// Resolve an optional inclusive HTTP range against a blob of `size` bytes into
/// `(offset, len)`.
fn resolve_range(range: Option<(u64, u64)>, size: u64) -> Result<(u64, u64)> {
    match range {
        None => Ok((0, size)),
        Some((start, end)) if start > end || start >= size => Err(StoreError::RangeNotSatisfiable),
        Some((start, end)) => Ok((start, end.min(size - 1) - start + 1)),
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    fn kind(&self) -> &'static str {
        "filesystem"
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobBody> {
        let mut file = tokio::fs::File::open(self.blob_path(digest))
            .await
            .map_err(|e| not_found_as(e, StoreError::NotFound))?;
        // Size from the open handle, so it describes exactly the file being served.
        let size = file.metadata().await?.len();
        let (offset, len) = resolve_range(range, size)?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).await?;
        }
        Ok(BlobBody::File { file, offset, len })
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        tokio::task::spawn_blocking(move || disk::remove_if_present(&path))
            .await
            .map_err(join_error)??;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Digest>> {
        let blobs = self.blobs.clone();
        Ok(tokio::task::spawn_blocking(move || disk::list(&blobs))
            .await
            .map_err(join_error)??)
    }

    async fn modified(&self, digest: &Digest) -> Result<Option<SystemTime>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) if m.is_file() => Ok(Some(m.modified()?)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_upload(&self, id: &str) -> Result<()> {
        let path = self.upload_path(id)?;
        // `create_new`: ids are random, so an existing file means a caller bug, and
        // truncating it could destroy someone's data. It surfaces as an I/O error.
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(())
    }

    async fn append_upload(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64> {
        let path = self.upload_path(id)?;
        let lock = self.locks.lock(id).await;
        let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
            // Append mode: every write lands at the current end, which the check below
            // pins to `offset`, and stays correct after a truncation.
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create(offset == 0)
                .open(&path)
                .map_err(|e| not_found_as(e, StoreError::UploadNotFound))?;
            let size = file.metadata()?.len();
            if size != offset {
                return Err(StoreError::OffsetMismatch {
                    expected: size,
                    got: offset,
                });
            }
            Ok(file)
        })
        .await
        .map_err(join_error)??;
        Ok(Appender::new(file, offset, lock).run(body).await?)
    }

    async fn upload_size(&self, id: &str) -> Result<u64> {
        let path = self.upload_path(id)?;
        // Deliberately lock-free: a status query must not wait behind a slow append.
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| not_found_as(e, StoreError::UploadNotFound))?;
        Ok(meta.len())
    }

    async fn read_upload(&self, id: &str) -> Result<ByteStream> {
        let path = self.upload_path(id)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| not_found_as(e, StoreError::UploadNotFound))?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            file, READ_CHUNK,
        )))
    }

    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<()> {
        let upload = self.upload_path(id)?;
        // Waits for an append in progress: renaming the file while it is still being
        // written would put the late bytes into the committed blob.
        let _lock = self.locks.lock(id).await;
        let dest = self.blob_path(digest);
        tokio::task::spawn_blocking(move || disk::commit(&upload, &dest))
            .await
            .map_err(join_error)?
    }

    async fn put_blob(&self, digest: &Digest, bytes: bytes::Bytes) -> Result<()> {
        // Written under a fresh upload name, then committed like any upload, in one trip to
        // the blocking pool. A crash in between leaves a stale upload for the purge job.
        let tmp = self.uploads.join(uuid::Uuid::new_v4().to_string());
        let dest = self.blob_path(digest);
        tokio::task::spawn_blocking(move || disk::put(&tmp, &dest, &bytes))
            .await
            .map_err(join_error)?
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        let path = self.upload_path(id)?;
        // Not locked, so a purge is never stuck behind a hung append. An append still
        // running writes into the unlinked file, which disappears when it finishes.
        tokio::task::spawn_blocking(move || disk::remove_if_present(&path))
            .await
            .map_err(join_error)??;
        Ok(())
    }

    async fn stale_uploads(&self, older_than: Duration) -> Result<Vec<String>> {
        let uploads = self.uploads.clone();
        let now = SystemTime::now();
        Ok(
            tokio::task::spawn_blocking(move || disk::stale_uploads(&uploads, older_than, now))
                .await
                .map_err(join_error)??,
        )
    }
}

//! Choosing and opening a backend from `BERTH_STORAGE_URL`.

use std::sync::Arc;

use crate::{BlobStore, FsBlobStore, StoreError};

/// Why `BERTH_STORAGE_URL` could not be turned into a store.
///
/// Messages name only the scheme, never the whole URL, since storage URLs may one day carry
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The value has no `scheme://` part.
    #[error("storage URL must look like file://<path>")]
    MissingScheme,
    /// A scheme no backend handles.
    #[error("unsupported storage URL scheme {0:?}; use file://<path>")]
    UnsupportedScheme(String),
    /// `s3://` is reserved for the S3 backend, which does not exist yet.
    #[error("S3 storage is not built yet; use a file://<path> storage URL for now")]
    S3NotBuilt,
    /// `file://` with nothing after it.
    #[error("file:// storage URL has an empty path")]
    EmptyPath,
    /// The backend itself failed to open.
    #[error("opening the store failed: {0}")]
    Store(#[from] StoreError),
}

/// Open the store named by `url`.
///
/// `file://<path>` opens an [`FsBlobStore`]: everything after `file://` is the path, so
/// `file://data/blobs` is the relative path `data/blobs` and `file:///var/lib/berth` is the
/// absolute `/var/lib/berth`. `s3://…` is reserved for a later S3 backend and fails for now.
pub async fn open_store(url: &str) -> Result<Arc<dyn BlobStore>, OpenError> {
    let (scheme, rest) = url.split_once("://").ok_or(OpenError::MissingScheme)?;
    if scheme.eq_ignore_ascii_case("file") {
        if rest.is_empty() {
            return Err(OpenError::EmptyPath);
        }
        let store = FsBlobStore::open(rest).await?;
        tracing::info!(root = %store.root().display(), "opened filesystem blob store");
        Ok(Arc::new(store))
    } else if scheme.eq_ignore_ascii_case("s3") {
        Err(OpenError::S3NotBuilt)
    } else {
        Err(OpenError::UnsupportedScheme(scheme.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_urls_open_absolute_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("store");
        let store = open_store(&format!("file://{}", root.display()))
            .await
            .expect("open");
        assert_eq!(store.kind(), "filesystem");
        assert!(root.join("blobs").is_dir());
        assert!(root.join("uploads").is_dir());
    }

    #[tokio::test]
    async fn file_urls_keep_relative_paths_relative() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Relative to the working directory; pointing back into the tempdir keeps the test
        // from writing into the source tree.
        let cwd = std::env::current_dir().expect("cwd");
        let rel = pathdiff(dir.path(), &cwd).join("rel");
        let store = open_store(&format!("file://{}", rel.display()))
            .await
            .expect("open");
        assert_eq!(store.kind(), "filesystem");
        assert!(dir.path().join("rel/blobs").is_dir());
    }

    /// `target` expressed relative to `base` using `..` components (both absolute).
    fn pathdiff(target: &std::path::Path, base: &std::path::Path) -> std::path::PathBuf {
        let mut rel = std::path::PathBuf::new();
        for _ in base.components().skip(1) {
            rel.push("..");
        }
        rel.join(target.strip_prefix("/").expect("absolute tempdir"))
    }

    #[tokio::test]
    async fn other_urls_are_rejected() {
        assert!(matches!(
            open_store("s3://bucket/prefix").await,
            Err(OpenError::S3NotBuilt)
        ));
        let msg = open_store("s3://bucket")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("S3") && msg.contains("not built yet"), "{msg}");
        assert!(matches!(
            open_store("file://").await,
            Err(OpenError::EmptyPath)
        ));
        assert!(matches!(
            open_store("/var/lib/berth").await,
            Err(OpenError::MissingScheme)
        ));
        assert!(
            matches!(open_store("gs://x").await, Err(OpenError::UnsupportedScheme(s)) if s == "gs")
        );
    }
}

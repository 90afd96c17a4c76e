//! Blob uploads: appending chunks with a running hash, finishing with digest verification
//! and an atomic commit, and recording the blob in the same transaction as its GC review.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use berth_core::{Algorithm, Digest, DigestHasher, ErrorCode};
use berth_db::{blobs, gc, uploads};
use futures_util::StreamExt;

use crate::error::{RegistryError, Result};
use crate::service::body::metered;
use crate::state::AppState;

/// Blobs up to this size sent in one request are taken into memory and stored in one step:
/// configs and small layers are most blobs by count, and for them the per-request file and
/// thread hand-offs of a streamed upload cost more than the bytes.
pub const SMALL_BLOB: u64 = 1 << 20;

/// Upper bound on remembered hashes; abandoned uploads must not grow memory forever. When
/// it is reached the map is emptied: a forgotten hash only costs a re-read at commit.
const MAX_HASHERS: usize = 4096;

/// Running hashes of uploads this process has been streaming, keyed by upload id and valid
/// only at the recorded offset. Another process (or this one after a restart) has no entry
/// and re-hashes the stored bytes when the upload is finished: correct, just slower.
#[derive(Default)]
pub struct Hashers(Mutex<HashMap<String, (u64, DigestHasher)>>);

impl Hashers {
    fn take(&self, id: &str, offset: u64) -> Option<DigestHasher> {
        let mut map = self.0.lock().ok()?;
        match map.remove(id) {
            Some((at, h)) if at == offset => Some(h),
            _ => None,
        }
    }

    fn put(&self, id: &str, offset: u64, h: DigestHasher) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_HASHERS {
                map.clear();
            }
            map.insert(id.to_owned(), (offset, h));
        }
    }

    /// Forget an upload's hash.
    pub fn forget(&self, id: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(id);
        }
    }
}

/// Caps on open upload sessions, so that one client cannot fill the database with sessions
/// (2,000 were accepted in 3.5 s before they existed). A session counts while it was
/// touched within `window`; older ones are abandoned and `berth-gc check --repair` removes
/// them, so a repository is never locked out by pushes that crashed long ago.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Sessions per repository (0: no limit).
    pub per_repository: u64,
    /// Sessions per user, the token's subject (0: no limit).
    pub per_user: u64,
    /// How recently a session must have been touched to count.
    pub window: std::time::Duration,
}

impl Caps {
    /// The caps the configuration names.
    pub fn from_config(cfg: &crate::Config) -> anyhow::Result<Self> {
        use anyhow::Context;
        Ok(Caps {
            per_repository: cfg.max_uploads_per_repository,
            per_user: cfg.max_uploads_per_user,
            window: berth_server::parse_duration(&cfg.upload_cap_window)
                .context("BERTH_UPLOAD_CAP_WINDOW")?,
        })
    }
}

/// Open session `id` in `repository_id` for `user`, unless that would put the repository
/// or the user over a cap (`TOOMANYREQUESTS`).
///
/// The row is inserted first and the caps counted after, each including the new row; an
/// insert that finds itself over a cap removes itself. So concurrent openings can never
/// leave more accepted sessions than a cap allows: the last accepted one counted every
/// earlier accepted one (committed before it) and found at most the cap. Racing openings
/// at the edge may both withdraw, which only costs a retry.
pub async fn open_session(
    state: &AppState,
    id: &str,
    repository_id: i64,
    user: Option<&str>,
) -> Result<()> {
    let now = chrono::Utc::now();
    uploads::create(&state.db.write, id, repository_id, user, now).await?;
    let caps = state.upload_caps;
    let since = now - chrono::Duration::from_std(caps.window).unwrap_or(chrono::Duration::MAX);
    let mut over = None;
    if caps.per_repository > 0 {
        let open =
            uploads::count_recent_in_repository(&state.db.read, repository_id, since).await?;
        if open > caps.per_repository {
            over = Some(format!(
                "this repository has {} upload sessions open, the limit is {}; finish or cancel some",
                open - 1,
                caps.per_repository
            ));
        }
    }
    if let (None, Some(user), true) = (&over, user, caps.per_user > 0) {
        let open = uploads::count_recent_by_user(&state.db.read, user, since).await?;
        if open > caps.per_user {
            over = Some(format!(
                "you have {} upload sessions open, the limit is {}; finish or cancel some",
                open - 1,
                caps.per_user
            ));
        }
    }
    if let Some(message) = over {
        uploads::delete(&state.db.write, id).await?;
        metrics::counter!("berth_registry_upload_sessions_refused_total").increment(1);
        return Err(RegistryError::new(ErrorCode::TooManyRequests).message(message));
    }
    Ok(())
}

/// Append `body` at `offset`; returns the new size. A failed append changes nothing.
pub async fn append(
    state: &AppState,
    id: &str,
    offset: u64,
    body: Body,
    expected_len: Option<u64>,
) -> Result<u64> {
    let hasher = if offset == 0 {
        Some(DigestHasher::new(Algorithm::Sha256))
    } else {
        state.hashers.take(id, offset)
    };
    let shared = Arc::new(Mutex::new(hasher));
    let size = state
        .store
        .append_upload(id, offset, metered(body, shared.clone(), expected_len))
        .await?;
    metrics::counter!("berth_registry_upload_bytes_total").increment(size - offset);
    let hasher = shared.lock().ok().and_then(|mut h| h.take());
    if let Some(h) = hasher {
        state.hashers.put(id, size, h);
    }
    Ok(size)
}

/// Store a whole small blob sent as one body of `len` bytes (at most [`SMALL_BLOB`]): read
/// it, verify it against `digest`, store and record it. `upload` is the session it closes,
/// if any; on any failure that session is discarded and nothing is kept.
pub async fn put_small(
    state: &AppState,
    repository_id: i64,
    body: Body,
    len: u64,
    digest: &Digest,
    upload: Option<&str>,
) -> Result<()> {
    let result = async {
        let bytes = read_exact(body, len).await?;
        let computed = Digest::compute(digest.algorithm(), &bytes);
        if computed != *digest {
            return Err(
                RegistryError::new(ErrorCode::DigestInvalid).message(format!(
                    "uploaded content has digest {computed}, not {digest}"
                )),
            );
        }
        metrics::counter!("berth_registry_upload_bytes_total").increment(len);
        state.store.put_blob(digest, bytes.clone()).await?;
        record_blob(
            state,
            repository_id,
            digest,
            len as i64,
            upload,
            Some(&bytes),
        )
        .await
    }
    .await;
    if let (Err(_), Some(id)) = (&result, upload) {
        // The write's own error is the answer; a session a failed discard leaves behind is
        // removed later as a stale upload, so log it rather than mask the first error.
        if let Err(e) = discard(state, id).await {
            tracing::warn!(upload.id = %id, error = ?e, "discarding a failed upload");
        }
    }
    result
}

/// The body, which must be exactly `len` bytes.
async fn read_exact(body: Body, len: u64) -> Result<bytes::Bytes> {
    use http_body_util::BodyExt;
    let collected = http_body_util::Limited::new(body, len as usize)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                RegistryError::new(ErrorCode::SizeInvalid)
                    .message(format!("body is longer than its Content-Length {len}"))
            } else {
                RegistryError::new(ErrorCode::BlobUploadInvalid)
                    .message("the request body was cut short")
            }
        })?;
    let bytes = collected.to_bytes();
    if bytes.len() as u64 != len {
        return Err(RegistryError::new(ErrorCode::SizeInvalid).message(format!(
            "body has {} bytes, Content-Length says {len}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Verify the upload hashes to `digest`, commit its bytes and record the blob in
/// `repository_id`. On a mismatch the upload is discarded: nothing is kept.
pub async fn finish(
    state: &AppState,
    repository_id: i64,
    id: &str,
    digest: &Digest,
) -> Result<u64> {
    let size = match state.store.upload_size(id).await {
        Ok(size) => size,
        // No byte ever arrived, so the store never created the upload: an empty blob.
        Err(berth_blobstore::StoreError::UploadNotFound) => {
            put_small(state, repository_id, Body::empty(), 0, digest, Some(id)).await?;
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    let computed = match state.hashers.take(id, size) {
        Some(h) if h.algorithm() == digest.algorithm() => h.finalize(),
        _ => {
            // This process did not stream the whole upload (restart, another replica, or
            // a non-sha256 digest): read the bytes back once.
            metrics::counter!("berth_registry_upload_rehash_bytes_total").increment(size);
            rehash(state, id, digest.algorithm()).await?
        }
    };
    if computed != *digest {
        discard(state, id).await?;
        return Err(
            RegistryError::new(ErrorCode::DigestInvalid).message(format!(
                "uploaded content has digest {computed}, not {digest}"
            )),
        );
    }
    // Bytes first, then the row: a crash between the two leaves an orphan file (found by
    // `berth-gc check`), never a row whose bytes are missing.
    state.store.commit_upload(id, digest).await?;
    record_blob(state, repository_id, digest, size as i64, Some(id), None).await?;
    Ok(size)
}

/// Insert the blob, link it to the repository, queue its GC review and end the upload
/// session, all in one transaction. The bytes must already be in the store; `bytes` is a
/// copy to write them again with if the GC deleted them meanwhile.
///
/// Race with the GC blob worker (argued in full in berth-gc's `worker` module): the review
/// row is upserted first, which waits for a worker reviewing this digest (it holds the
/// row while it deletes the blob's row and bytes). Only then are the bytes checked: gone
/// means a worker deleted them after this upload committed them, so they are written
/// again from `bytes`, or, without a copy, the push fails (`BLOB_UNKNOWN`) for the client
/// to retry. No blob row is ever committed without its bytes.
pub async fn record_blob(
    state: &AppState,
    repository_id: i64,
    digest: &Digest,
    size: i64,
    upload: Option<&str>,
    bytes: Option<&bytes::Bytes>,
) -> Result<()> {
    super::retry::on_conflict(|| {
        record_blob_once(state, repository_id, digest, size, upload, bytes)
    })
    .await
}

async fn record_blob_once(
    state: &AppState,
    repository_id: i64,
    digest: &Digest,
    size: i64,
    upload: Option<&str>,
    bytes: Option<&bytes::Bytes>,
) -> Result<()> {
    let now = chrono::Utc::now();
    let d = digest.to_string();
    let txn = state.db.begin_write().await?;
    gc::enqueue_blob(
        &txn,
        &d,
        gc::Event::BlobUpload,
        state.review_after(now),
        now,
    )
    .await?;
    if state.store.stat(digest).await?.is_none() {
        let Some(bytes) = bytes else {
            metrics::counter!("berth_registry_blob_gc_races_total", "outcome" => "retry")
                .increment(1);
            return Err(RegistryError::new(ErrorCode::BlobUnknown).message(format!(
                "blob {digest} was garbage-collected while it was being stored; push it again"
            )));
        };
        metrics::counter!("berth_registry_blob_gc_races_total", "outcome" => "rewritten")
            .increment(1);
        state.store.put_blob(digest, bytes.clone()).await?;
    }
    blobs::insert(&txn, &d, size, now).await?;
    blobs::link(&txn, repository_id, &d, now).await?;
    if let Some(id) = upload {
        uploads::delete(&txn, id).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Drop an upload's bytes and session.
pub async fn discard(state: &AppState, id: &str) -> Result<()> {
    state.hashers.forget(id);
    state.store.delete_upload(id).await?;
    uploads::delete(&state.db.write, id).await?;
    Ok(())
}

async fn rehash(state: &AppState, id: &str, algorithm: Algorithm) -> Result<Digest> {
    let mut stream = state.store.read_upload(id).await?;
    let mut h = DigestHasher::new(algorithm);
    while let Some(chunk) = stream.next().await {
        h.update(&chunk.map_err(berth_blobstore::StoreError::Io)?);
    }
    Ok(h.finalize())
}

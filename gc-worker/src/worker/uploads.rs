//! Expiring abandoned upload sessions: a session untouched for `upload_expiry` (default
//! 24 h; every PATCH touches it) is ended, row first, then its bytes. Open sessions count
//! towards storage usage and are capped per repository, so an abandoned one must not hold
//! space or a slot for ever. One pass handles a batch; any number of berth-gc processes may
//! run it (deleting a row twice is harmless, and only one of them finds it).
//!
//! Row before bytes: a client PATCHing at the very moment its session expires either wrote
//! before the row went (the expiry then takes the bytes) or finds the session unknown
//! (`BLOB_UPLOAD_UNKNOWN`) and starts over; bytes whose row is gone are found by the next
//! pass through the store's own listing of stale upload files.

use std::time::Duration;

use berth_blobstore::{BlobStore, StoreError};
use berth_db::{Db, consistency};
use chrono::{DateTime, Utc};

use super::Outcome;

/// Sessions ended per pass.
const BATCH: u64 = 500;

/// End up to [`BATCH`] sessions untouched since `now - expiry`, and delete stale upload
/// files that have no row. `Empty` when there was nothing to expire.
pub async fn run_once(
    db: &Db,
    store: &dyn BlobStore,
    expiry: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<Outcome> {
    let cutoff = now - chrono::Duration::from_std(expiry)?;
    let stale = consistency::stale_uploads(&db.read, cutoff, "", BATCH).await?;
    let mut ended = 0u64;
    for u in &stale {
        // A conditional delete: a session touched since the read above stays.
        if berth_db::uploads::delete_if_untouched(&db.write, &u.id, cutoff).await? {
            remove_bytes(store, &u.id).await;
            ended += 1;
        }
    }
    // Files of sessions whose row is already gone (a crash between the two deletes).
    let files = store.stale_uploads(expiry).await?;
    for chunk in files.chunks(500) {
        let with_row = consistency::uploads_present(&db.read, chunk.to_vec()).await?;
        for id in chunk.iter().filter(|id| !with_row.contains(id)) {
            remove_bytes(store, id).await;
            ended += 1;
        }
    }
    if ended == 0 {
        return Ok(Outcome::Empty);
    }
    metrics::counter!("berth_gc_uploads_expired_total").increment(ended);
    tracing::info!(sessions = ended, "expired abandoned upload sessions");
    Ok(Outcome::Dangling)
}

/// Delete a session's bytes; a failure is logged (the next pass retries it through the
/// store's listing of stale files).
async fn remove_bytes(store: &dyn BlobStore, id: &str) {
    match store.delete_upload(id).await {
        Ok(()) | Err(StoreError::UploadNotFound | StoreError::InvalidUploadId) => {}
        Err(e) => {
            tracing::warn!(upload.id = id, error = %e, "could not delete an expired upload's bytes")
        }
    }
}

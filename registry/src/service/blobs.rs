//! Blob link changes: removing a blob from a repository queues the blob for GC review in
//! the same transaction.

use berth_core::Digest;
use berth_db::{blobs, gc};

use crate::error::Result;
use crate::state::AppState;

/// Unlink `digest` from a repository; `false` if it was not linked.
pub async fn unlink(state: &AppState, repository_id: i64, digest: &Digest) -> Result<bool> {
    super::retry::on_conflict(|| unlink_once(state, repository_id, digest)).await
}

async fn unlink_once(state: &AppState, repository_id: i64, digest: &Digest) -> Result<bool> {
    let now = chrono::Utc::now();
    let d = digest.to_string();
    let txn = state.db.begin_write().await?;
    if !blobs::unlink(&txn, repository_id, &d).await? {
        return Ok(false);
    }
    gc::enqueue_blob(
        &txn,
        &d,
        gc::Event::BlobUnlink,
        state.review_after(now),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

//! The blob worker: one due row of `gc_blob_review_queue` per transaction. A blob no
//! manifest in any repository references (as layer or config) loses its row, its
//! repository links and its bytes; the race argument is in [`super`].

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use berth_blobstore::BlobStore;
use berth_core::Digest;
use berth_db::{Db, gc_review};
use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{Outcome, Settings, settle};

const WORKER: &str = "blob";

/// Review the oldest due blob, if any. A failed review is rolled back and postponed (in a
/// fresh transaction) and reported as the error.
pub async fn run_once(
    db: &Db,
    store: &Arc<dyn BlobStore>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<Outcome> {
    if !gc_review::blob_review_due(&db.read, now).await? {
        return Ok(Outcome::Empty);
    }
    let started = Instant::now();
    let txn = db.begin_write().await?;
    let Some(row) = gc_review::take_blob_review(&txn, now).await? else {
        txn.rollback().await?;
        return Ok(Outcome::Empty);
    };
    let span = tracing::info_span!("gc_review", worker = WORKER, blob.digest = %row.digest, review_count = row.review_count);
    let result = async {
        let outcome = review(&txn, store, settings, &row.digest).await?;
        txn.commit().await?;
        Ok::<_, anyhow::Error>(outcome)
    }
    .instrument(span.clone())
    .await;
    settle(
        WORKER,
        &span,
        started,
        result,
        now,
        row.review_count,
        |until| gc_review::postpone_blob_review(&db.write, &row.digest, until),
    )
    .await
}

/// The decision, inside the transaction holding the review row.
async fn review(
    txn: &impl sea_orm::ConnectionTrait,
    store: &Arc<dyn BlobStore>,
    settings: &Settings,
    digest: &str,
) -> anyhow::Result<Outcome> {
    if gc_review::blob_is_referenced(txn, digest).await? {
        gc_review::delete_blob_review(txn, digest).await?;
        tracing::info!(decision = "keep", reason = "referenced", "blob reviewed");
        return Ok(Outcome::Noop);
    }
    // The row first: on PostgreSQL this waits for (and then fails on) a manifest insert that
    // is referencing the blob right now, before any byte is touched.
    let Some(size) = gc_review::delete_blob_row(txn, digest).await? else {
        // No row: nothing the registry serves. Bytes without a row are an interrupted
        // upload's (about to be recorded) or an orphan for `berth-gc check`; leave them.
        gc_review::delete_blob_review(txn, digest).await?;
        tracing::info!(decision = "keep", reason = "no_blob_row", "blob reviewed");
        return Ok(Outcome::Noop);
    };
    metrics::counter!("berth_gc_deletes_total", "artifact" => "blob", "backend" => "database")
        .increment(1);
    let parsed: Digest = digest
        .parse()
        .map_err(|e| anyhow::anyhow!("queued digest {digest:?} is invalid: {e}"))?;
    // While the review row is still held: an upload of the same digest waits on that row,
    // then finds the bytes gone and writes them again (see the module above).
    tokio::time::timeout(settings.storage_timeout, store.delete(&parsed))
        .await
        .context("store delete timed out")?
        .context("store delete failed")?;
    metrics::counter!("berth_gc_deletes_total", "artifact" => "blob", "backend" => "storage")
        .increment(1);
    metrics::counter!("berth_gc_storage_deleted_bytes_total").increment(size.max(0) as u64);
    gc_review::delete_blob_review(txn, digest).await?;
    tracing::info!(
        decision = "delete",
        reason = "unreferenced",
        size_bytes = size,
        "blob reviewed"
    );
    Ok(Outcome::Dangling)
}

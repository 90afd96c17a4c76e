//! The manifest worker: one due row of `gc_manifest_review_queue` per transaction. A
//! manifest that is untagged, no index's child and no referrer's subject (in its repository)
//! is deleted the way the API deletes one, which queues its blobs and children for review;
//! the race argument is in [`super`].

use std::time::Instant;

use berth_db::{Db, gc_review, manifests};
use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{Outcome, Settings, settle};

const WORKER: &str = "manifest";

/// Review the oldest due manifest, if any. A failed review is rolled back and postponed (in
/// a fresh transaction) and reported as the error.
pub async fn run_once(db: &Db, settings: &Settings, now: DateTime<Utc>) -> anyhow::Result<Outcome> {
    if !gc_review::manifest_review_due(&db.read, now).await? {
        return Ok(Outcome::Empty);
    }
    let started = Instant::now();
    let txn = db.begin_write().await?;
    let Some(row) = gc_review::take_manifest_review(&txn, now).await? else {
        txn.rollback().await?;
        return Ok(Outcome::Empty);
    };
    let span = tracing::info_span!(
        "gc_review",
        worker = WORKER,
        repository.id = row.repository_id,
        manifest.id = row.manifest_id,
        manifest.digest = tracing::field::Empty,
        review_count = row.review_count,
    );
    let result = async {
        let outcome = review(&txn, settings, &row, now).await?;
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
        |until| {
            gc_review::postpone_manifest_review(
                &db.write,
                row.repository_id,
                row.manifest_id,
                until,
            )
        },
    )
    .await
}

/// The decision, inside the transaction holding the review row.
async fn review(
    txn: &impl sea_orm::ConnectionTrait,
    settings: &Settings,
    row: &berth_db::entity::gc_manifest_review_queue::Model,
    now: DateTime<Utc>,
) -> anyhow::Result<Outcome> {
    // Locking the manifest row waits for a tag, child reference or layer being added to it
    // right now; the checks below then see it.
    let Some(m) = gc_review::lock_manifest_row(txn, row.manifest_id).await? else {
        // Deleting the manifest cascades to its review row, so this is only a row whose
        // manifest went between our pick and our lock.
        gc_review::delete_manifest_review(txn, row.repository_id, row.manifest_id).await?;
        return Ok(Outcome::Noop);
    };
    tracing::Span::current().record("manifest.digest", m.digest.as_str());
    if let Some(reason) = gc_review::manifest_keeper(txn, &m).await? {
        gc_review::delete_manifest_review(txn, row.repository_id, row.manifest_id).await?;
        tracing::info!(decision = "keep", reason, "manifest reviewed");
        return Ok(Outcome::Noop);
    }
    // The API's deletion path: cascades layers, references and this review row, and queues
    // the config, layers and children for their own reviews.
    manifests::delete_and_queue(txn, &m, settings.review_after(now), now).await?;
    gc_review::delete_manifest_review(txn, row.repository_id, row.manifest_id).await?;
    metrics::counter!("berth_gc_deletes_total", "artifact" => "manifest", "backend" => "database")
        .increment(1);
    tracing::info!(
        decision = "delete",
        reason = "untagged_unreferenced",
        "manifest reviewed"
    );
    Ok(Outcome::Dangling)
}

//! Online garbage collection (GitLab's design): workers that take due rows of the
//! blob and manifest review queues one at a time, re-check inside the transaction whether
//! the blob or manifest is still referenced, and delete it if not.
//!
//! # Why the workers and the registry never both win
//!
//! Every review runs in one write transaction that holds the review row from the start
//! (PostgreSQL `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1`; on SQLite the write transaction
//! itself, which holds the database's only write lock from its first statement: the single
//! lease). Everything below is argued for PostgreSQL under READ COMMITTED; on SQLite every
//! case is trivially safe because the worker's whole review (re-check, row deletes and the
//! store delete) and the registry's whole write are serialized, and each reads the state
//! the other committed.
//!
//! **Tagging vs the manifest worker.** A tagging `PUT` first locks the manifest's review row
//! ([`berth_db::gc_review::lock_manifest_review`]), then re-reads the manifest. If a worker
//! holds the row, the lock waits until the worker commits: either the worker found the
//! manifest kept (the row is gone, the manifest is there, the tag is added) or it deleted it
//! (the re-read finds nothing and the `PUT`, which has the bytes, inserts the manifest
//! again). If the registry holds the row first, the worker's `SKIP LOCKED` passes it by and
//! sees the tag when it takes the row after the registry commits. If no review row existed
//! when the registry looked but one is queued (and committed) by someone else before the
//! tagging commits, the worker locks the manifest row itself ([`berth_db::gc_review::lock_manifest_row`],
//! `FOR UPDATE`), which waits for the tag insert's foreign-key share lock; the re-check that
//! follows sees the new tag. So a manifest is never deleted from under a tag being added,
//! and a tag is never added to a manifest being deleted.
//!
//! **Tag deletion vs the manifest worker.** Deleting a tag locks its manifest's review row
//! first (inside [`berth_db::tags::delete_and_queue`], so the registry, the management API,
//! bulk deletions and cleanup policies all do), then deletes the tag and re-queues the manifest in the same transaction. A worker
//! holding the row finishes first (it saw the tag, so it kept the manifest); the deletion's
//! upsert then writes a fresh row (review not lost). A worker never sees the tag gone
//! before the new review row exists, because both are committed together.
//!
//! **Index creation vs the manifest worker.** Creating an index locks each child's review
//! row (in id order, so two index pushes cannot deadlock) and re-checks the children exist:
//! a child the worker deleted meanwhile makes the push fail with `MANIFEST_BLOB_UNKNOWN`.
//! A child reference inserted first makes the worker, which locks the child's manifest row,
//! wait and then see the reference.
//!
//! **Blob upload vs the blob worker.** The blob worker, holding the blob's review row,
//! deletes the blob row (cascading its repository links), then the bytes, then the review
//! row, and commits: bytes are only deleted while the row is held. An upload's final
//! transaction first upserts the same review row (waiting for a worker that holds it), then
//! checks the bytes are in the store, rewriting them from memory when it still has them,
//! else failing so the client retries; only then does it insert the blob row. So a blob row
//! is never committed without its bytes. A manifest `PUT` that references a blob the worker
//! is deleting either commits first (the worker's delete of the blob row waits for the
//! layer insert's share lock, then fails the foreign key: the review rolls back and is
//! postponed, bytes untouched because the row delete comes first), or comes second (its
//! insert fails the foreign key and it answers `MANIFEST_BLOB_UNKNOWN`).
//!
//! **Blob existence check vs the blob worker.** A client that `HEAD`s a blob, sees it, and
//! pushes a manifest after the worker deleted it gets `MANIFEST_BLOB_UNKNOWN` and pushes the
//! blob again (GitLab accepts the same retry): never a corrupt image, since a manifest is
//! only written when its blobs' rows (and hence bytes) exist in the same transaction.
//!
//! A review that loses such a race on PostgreSQL (a deadlock, or a foreign key a concurrent
//! commit now violates) rolls back whole and simply runs again; only other failures are
//! postponed `5 min × 2^n`. The registry likewise runs a write that lost a race (unique or
//! foreign-key violation) again against the winner's state.
//!
//! What is left: a crash between deleting the bytes and committing leaves a blob row
//! without bytes (the transaction rolled back). `berth-gc check` reports it.

pub mod agent;
pub mod blob;
pub mod manifest;
#[cfg(test)]
mod tests_concurrent;
pub mod uploads;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// What one review did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No due row.
    Empty,
    /// The row was dropped; its blob or manifest is still referenced.
    Noop,
    /// The blob or manifest was unreferenced and deleted.
    Dangling,
}

impl Outcome {
    /// `result` label of `berth_gc_runs_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Empty => "empty",
            Outcome::Noop => "noop",
            Outcome::Dangling => "dangling",
        }
    }
}

/// What a review needs to know besides the database and store.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `BERTH_GC_REVIEW_DELAY`: review time of what a deletion queues.
    pub review_delay: Duration,
    /// Bound on one store delete, so a review row is not held forever.
    pub storage_timeout: Duration,
}

impl Settings {
    /// When something a review queues now becomes due.
    pub fn review_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.review_delay).unwrap_or(chrono::Duration::days(1))
    }
}

/// How long a failed review waits: `5 min × 2^review_count`, at most 24 h (GitLab's rule).
pub fn postpone_delay(review_count: i32) -> Duration {
    const BASE: u64 = 5 * 60;
    const CAP: u64 = 24 * 60 * 60;
    let exp = review_count.clamp(0, 20) as u32;
    Duration::from_secs(BASE.saturating_mul(1 << exp).min(CAP))
}

/// Did the review fail only because a concurrent write won a race (deadlock, serialization
/// failure, SQLite busy, or a foreign key the winner's rows now violate, such as a layer
/// committed against the blob being deleted)? Such a review is rolled back and simply
/// runs again, without the failure back-off (GitLab skips it for transient errors too).
pub(crate) fn lost_race(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sea_orm::DbErr>()
            .is_some_and(|d| berth_db::is_retryable(d) || berth_db::is_fk_violation(d))
    })
}

/// The end of one review that ran as `span` since `started`: its duration and result in the
/// metrics and, for a failure, the log line and (unless it only lost a race) the back-off,
/// written by `postpone` (given the time the row waits until; `true` when it postponed a
/// row). Returns `result`.
async fn settle<F>(
    worker: &'static str,
    span: &tracing::Span,
    started: Instant,
    result: anyhow::Result<Outcome>,
    now: DateTime<Utc>,
    review_count: i32,
    postpone: impl FnOnce(DateTime<Utc>) -> F,
) -> anyhow::Result<Outcome>
where
    F: Future<Output = Result<bool, sea_orm::DbErr>>,
{
    metrics::histogram!("berth_gc_run_duration_seconds", "worker" => worker)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(outcome) => {
            count_run(worker, outcome.label());
            Ok(outcome)
        }
        Err(e) => {
            count_run(worker, "error");
            if lost_race(&e) {
                // Not a failure of this review: the next run sees the winner's state.
                span.in_scope(|| {
                    tracing::info!(error = %format!("{e:#}"), "review lost a race; retrying");
                });
                return Err(e);
            }
            span.in_scope(|| {
                tracing::warn!(error = %format!("{e:#}"), "review failed; postponing");
            });
            let until = now
                + chrono::Duration::from_std(postpone_delay(review_count))
                    .unwrap_or(chrono::Duration::days(1));
            if postpone(until).await? {
                metrics::counter!("berth_gc_postpones_total", "worker" => worker).increment(1);
            }
            Err(e)
        }
    }
}

/// Count one review in `berth_gc_runs_total`.
fn count_run(worker: &'static str, result: &'static str) {
    metrics::counter!("berth_gc_runs_total", "worker" => worker, "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_five_minutes_doubling_up_to_a_day() {
        assert_eq!(postpone_delay(0), Duration::from_secs(300));
        assert_eq!(postpone_delay(1), Duration::from_secs(600));
        assert_eq!(postpone_delay(3), Duration::from_secs(2400));
        assert_eq!(postpone_delay(8), Duration::from_secs(76_800));
        assert_eq!(postpone_delay(9), Duration::from_secs(86_400));
        assert_eq!(postpone_delay(1000), Duration::from_secs(86_400));
        assert_eq!(postpone_delay(-1), Duration::from_secs(300));
    }
}

//! berth-content: the one home of every change to registry content. Putting and deleting
//! manifests, creating, moving and deleting tags, deleting repositories and unlinking
//! blobs, each with the GC review rows it implies, written once and called by the
//! registry's `/v2/` API, the management API and berth-gc alike.
//!
//! # Lock order
//!
//! Every transaction here takes row locks in this order, and never the other way round, so
//! two content changes (or a change and a GC worker, which takes a review row and then the
//! manifest row) cannot deadlock on PostgreSQL:
//!
//! 1. the root namespace's row, when a storage limit covers the write (pushes under one
//!    limit take turns, each seeing the usage the previous one left);
//! 2. manifest GC review rows, in ascending manifest id (tagging, untagging, deleting or
//!    referencing a manifest waits for a worker reviewing it, then re-reads it);
//! 3. manifest rows (`FOR UPDATE`), in ascending id (a tag pointed at a manifest being
//!    deleted waits, so the tags read after the lock are all the tags it has);
//! 4. tag rows, written last.
//!
//! On SQLite every write transaction holds the database's single write lock from its first
//! statement ([`berth_db::Db::begin_write`]), so the order is moot there and the argument is
//! only needed for PostgreSQL. Why GC and these writes never both win is argued in
//! berth-gc's `worker` module.
//!
//! # Retries
//!
//! Each operation is one transaction, run again (bounded, with jitter) when it loses a race
//! ([`retry`]). What still fails keeps its kind: the registry and the API answer a conflict
//! with 409 and only an unreachable database or exhausted retries with 503.

mod blobs;
mod error;
mod manifests;
pub mod retry;

/// What is alive (tagged, children of live indexes, subjects and referrers of live
/// manifests): the one definition GC, usage, quota checks and cleanup use.
pub use berth_db::liveness;
mod tags;

use berth_db::Db;
use berth_db::settings::ReviewDelay;
use chrono::{DateTime, Utc};

pub use error::{ContentError, Missing, Protected};
pub use manifests::{DeletedManifest, PutManifest};
pub use tags::{BatchGuard, BatchOutcome, TagBatch};

/// Result of a content operation.
pub type Result<T, E = ContentError> = std::result::Result<T, E>;

/// Immutable tag rules that apply to a change.
#[derive(Debug, Clone, Copy)]
pub enum Immutable<'a> {
    /// Rules the caller already has (the registry reads them from the caller's token).
    Given(&'a berth_core::immutability::TagPatterns),
    /// The project's rules, read inside the changing transaction (the API, berth-gc), so a
    /// rule added concurrently is either seen or committed after the change.
    OfProject(i64),
}

/// Registry content on one database.
#[derive(Debug, Clone)]
pub struct Content {
    db: Db,
    review_delay: ReviewDelay,
}

impl Content {
    /// Content on `db`, queueing GC reviews `review_delay` after each change (the one
    /// delay berth-gc records in the database, followed by every process).
    pub fn new(db: Db, review_delay: ReviewDelay) -> Self {
        Content { db, review_delay }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// When a review row written at `now` becomes due.
    pub fn review_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.review_delay.get())
            .unwrap_or(chrono::Duration::days(1))
    }
}

/// The compiled rules `immutable` names, read on `c` for [`Immutable::OfProject`].
async fn rules<'a>(
    c: &impl sea_orm::ConnectionTrait,
    immutable: Immutable<'a>,
) -> Result<std::borrow::Cow<'a, berth_core::immutability::TagPatterns>> {
    use std::borrow::Cow;
    match immutable {
        Immutable::Given(p) => Ok(Cow::Borrowed(p)),
        Immutable::OfProject(project_id) => {
            let patterns = berth_db::tag_rules::patterns(c, project_id).await?;
            let (rules, invalid) = berth_core::immutability::TagPatterns::compile(&patterns);
            if !invalid.is_empty() {
                tracing::warn!(project.id = project_id, patterns = ?invalid, "invalid immutable tag patterns ignored");
            }
            Ok(Cow::Owned(rules))
        }
    }
}

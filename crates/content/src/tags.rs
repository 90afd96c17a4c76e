//! Deleting tags, one or a batch. The manifest a deleted tag pointed at is queued for GC
//! review in the same transaction (never dropped here), so a manifest left untagged is
//! reviewed later and one still tagged elsewhere stays.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use berth_db::entity::tags as tag_rows;

use crate::error::{ContentError, Protected};
use crate::manifests::immutable_error;
use crate::retry::with_retry;
use crate::{Content, Immutable, Result, rules};

/// A batch of tags to delete from one repository (cleanup policies, bulk deletion).
#[derive(Debug, Clone, Copy)]
pub struct TagBatch<'a> {
    /// The repository.
    pub repository_id: i64,
    /// Tag names; those gone already are skipped.
    pub names: &'a [String],
    /// Skip tags pushed or moved after this instant (a cleanup judged the tags as they
    /// were when its run started; one re-pushed since is a new tag).
    pub unchanged_since: Option<DateTime<Utc>>,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Tags deleted.
    pub deleted: Vec<String>,
    /// Tags left because an immutable rule protects them.
    pub protected: Vec<String>,
}

/// Decides, inside the batch's transaction and after its deletes, whether it may commit
/// (e.g. renews a lease and answers `false` when the lease was lost). Gets the number of
/// tags deleted.
pub trait BatchGuard {
    /// `Ok(true)`: commit; `Ok(false)`: roll back and report `None`.
    fn allow(
        &self,
        txn: &DatabaseTransaction,
        deleted: u64,
    ) -> impl std::future::Future<Output = Result<bool, berth_db::Error>> + Send;
}

/// No guard: always commit.
impl BatchGuard for () {
    async fn allow(&self, _: &DatabaseTransaction, _: u64) -> Result<bool, berth_db::Error> {
        Ok(true)
    }
}

impl Content {
    /// Delete one tag; the manifest it pointed at is queued for review. A tag an immutable
    /// rule matches stays.
    #[tracing::instrument(skip_all, fields(repository.id = repository_id, tag = name))]
    pub async fn delete_tag(
        &self,
        repository_id: i64,
        name: &str,
        immutable: Immutable<'_>,
    ) -> Result<()> {
        with_retry("delete_tag", || async {
            let now = Utc::now();
            let txn = self.db.begin_write().await?;
            let rules = rules(&txn, immutable).await?;
            if let Some(pattern) = rules.matching(name) {
                // Checked before anything is written; an existing tag is refused, a missing
                // one is still "not found" below only if it does not exist.
                if berth_db::tags::find(&txn, repository_id, name)
                    .await?
                    .is_some()
                {
                    return Err(immutable_error(name, pattern, Protected::Delete));
                }
            }
            // Lock order: the manifest's review row is locked inside `delete_and_queue`
            // before the tag row goes.
            berth_db::tags::delete_and_queue(
                &txn,
                repository_id,
                name,
                self.review_after(now),
                now,
            )
            .await?
            .ok_or_else(|| ContentError::TagUnknown(name.to_owned()))?;
            txn.commit().await?;
            Ok(())
        })
        .await
    }

    /// Delete a batch of tags in one transaction: those still there, not changed since
    /// `unchanged_since`, and not protected by an immutable rule. `guard` runs in the same
    /// transaction after the deletes and may refuse the commit (a lost lease); then
    /// nothing is deleted and `None` is returned.
    #[tracing::instrument(skip_all, fields(repository.id = batch.repository_id, tags = batch.names.len()))]
    pub async fn delete_tags(
        &self,
        batch: TagBatch<'_>,
        immutable: Immutable<'_>,
        guard: &(impl BatchGuard + Sync),
    ) -> Result<Option<BatchOutcome>> {
        with_retry("delete_tags", || {
            self.delete_tags_once(batch, immutable, guard)
        })
        .await
    }

    async fn delete_tags_once(
        &self,
        batch: TagBatch<'_>,
        immutable: Immutable<'_>,
        guard: &(impl BatchGuard + Sync),
    ) -> Result<Option<BatchOutcome>> {
        let now = Utc::now();
        let review_after = self.review_after(now);
        let txn = self.db.begin_write().await?;
        let rules = rules(&txn, immutable).await?;
        // The batch's tags as they are now, in one query; they are deleted in manifest id
        // order so the review rows are locked in the documented order.
        let mut current = tag_rows::Entity::find()
            .filter(tag_rows::Column::RepositoryId.eq(batch.repository_id))
            .filter(tag_rows::Column::Name.is_in(batch.names.iter().map(String::as_str)))
            .all(&txn)
            .await?;
        current.sort_by(|a, b| (a.manifest_id, &a.name).cmp(&(b.manifest_id, &b.name)));
        let mut deleted = Vec::new();
        let mut protected = Vec::new();
        for tag in current {
            if batch.unchanged_since.is_some_and(|t| tag.updated_at > t) {
                continue;
            }
            if rules.matching(&tag.name).is_some() {
                protected.push(tag.name);
                continue;
            }
            let gone = berth_db::tags::delete_and_queue(
                &txn,
                batch.repository_id,
                &tag.name,
                review_after,
                now,
            )
            .await?;
            if gone.is_some() {
                deleted.push(tag.name);
            }
        }
        if !guard.allow(&txn, deleted.len() as u64).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        Ok(Some(BatchOutcome { deleted, protected }))
    }
}

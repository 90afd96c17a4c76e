//! A bulk tag deletion job (GitLab's `DELETE …/registry/repositories/:id/tags`): the rules
//! judged once over the repository's tags *as of the request* — `older_than` counts back
//! from the job's creation time, and tags pushed or moved after it are left alone and not
//! counted, so a resumed run selects the same tags — then the selected tags deleted in
//! batches. `latest` and immutable tags are never deleted; immutability is re-read inside
//! every batch.

use berth_content::{BatchGuard, Content, Immutable, TagBatch};
use berth_core::cleanup::{Decision, TagFacts};
use berth_core::immutability::TagPatterns;
use berth_core::jobs::{BulkRules, RepositoryTarget};
use berth_db::sea_orm::DatabaseTransaction;
use berth_db::settings::ReviewDelay;
use chrono::{DateTime, Utc};

use super::{End, Held, immutable};

/// Run the job.
pub(super) async fn run(
    held: &Held<'_>,
    target: &RepositoryTarget,
    params: &BulkRules,
) -> anyhow::Result<End> {
    let rules = match params.rules() {
        Ok(r) => r,
        Err(e) => return Ok(End::Refused(e.to_string())),
    };
    let c = &held.db().read;
    let as_of = held.job.created_at;
    let rows = berth_db::registry_deletions::tags_with_digests(c, target.repository_id).await?;
    let facts: Vec<TagFacts> = rows
        .into_iter()
        .filter(|r| r.tag.updated_at <= as_of)
        .map(|r| TagFacts {
            name: r.tag.name,
            published_at: r.tag.updated_at,
            digest: r.digest,
        })
        .collect();
    let protected = immutable(c, target).await?;
    let decisions = rules.evaluate(&facts, &protected, as_of);
    let doomed: Vec<String> = facts
        .into_iter()
        .zip(decisions)
        .filter(|(_, d)| *d == Decision::Delete)
        .map(|(t, _)| t.name)
        .collect();
    for chunk in doomed.chunks(usize::try_from(held.batch()).unwrap_or(100)) {
        if delete_batch(held, target, chunk, Some(as_of))
            .await?
            .is_none()
        {
            return Ok(End::Lost);
        }
        if held.stopping() {
            return Ok(End::Stopped);
        }
    }
    Ok(End::Done { recorded: false })
}

/// Delete the tags named `names` (those still there, not immutable, and when `as_of` is
/// given not moved after it) in one transaction of the content library, fenced by the
/// lease: the guard renews it inside the transaction and a lost lease rolls the batch
/// back. `None`: the lease was lost. Returns how many went and which were immutable.
pub(super) async fn delete_batch(
    held: &Held<'_>,
    target: &RepositoryTarget,
    names: &[String],
    as_of: Option<DateTime<Utc>>,
) -> anyhow::Result<Option<(u64, Vec<String>)>> {
    let none = TagPatterns::default();
    let immutable = match target.project_id {
        Some(project_id) => Immutable::OfProject(project_id),
        None => Immutable::Given(&none),
    };
    let batch = TagBatch {
        repository_id: target.repository_id,
        names,
        unchanged_since: as_of,
    };
    let content = Content::new(
        held.db().clone(),
        ReviewDelay::fixed(held.runner.settings.review_delay),
    );
    let Some(outcome) = content
        .delete_tags(batch, immutable, &LeaseGuard(held))
        .await?
    else {
        return Ok(None);
    };
    let deleted = outcome.deleted.len() as u64;
    held.count(deleted);
    Ok(Some((deleted, outcome.protected)))
}

/// Renews the job's lease inside a batch's transaction, adding what it deleted to the
/// job's progress; a lost lease refuses the commit.
struct LeaseGuard<'a, 'b>(&'a Held<'b>);

impl BatchGuard for LeaseGuard<'_, '_> {
    async fn allow(
        &self,
        txn: &DatabaseTransaction,
        deleted: u64,
    ) -> Result<bool, berth_db::Error> {
        Ok(self.0.renew_in(txn, deleted).await?)
    }
}

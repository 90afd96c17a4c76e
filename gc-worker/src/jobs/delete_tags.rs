//! A bulk tag deletion job (GitLab's `DELETE …/registry/repositories/:id/tags`): the rules
//! judged once over the repository's tags *as of the request* — `older_than` counts back
//! from the job's creation time, and tags pushed or moved after it are left alone and not
//! counted, so a resumed run selects the same tags — then the selected tags deleted in
//! batches. `latest` and immutable tags are never deleted; immutability is re-read inside
//! every batch.

use berth_core::cleanup::{Decision, TagFacts};
use berth_core::jobs::{BulkRules, RepositoryTarget};
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
/// given not moved after it) in one fenced transaction. `None`: the lease was lost.
/// Returns how many went and which were immutable.
pub(super) async fn delete_batch(
    held: &Held<'_>,
    target: &RepositoryTarget,
    names: &[String],
    as_of: Option<DateTime<Utc>>,
) -> anyhow::Result<Option<(u64, Vec<String>)>> {
    let Some(txn) = held.begin().await? else {
        return Ok(None);
    };
    let now = Utc::now();
    let review_after = held.review_after(now);
    let protected = immutable(&txn, target).await?;
    let repository = target.repository_id;
    let mut deleted = 0;
    let mut kept = Vec::new();
    for name in names {
        let Some(tag) = berth_db::tags::find(&txn, repository, name).await? else {
            continue;
        };
        if as_of.is_some_and(|t| tag.updated_at > t) {
            continue;
        }
        if protected.matching(name).is_some() {
            kept.push(name.clone());
            continue;
        }
        berth_db::tags::delete_and_queue(&txn, repository, name, review_after, now).await?;
        deleted += 1;
    }
    held.commit(txn, deleted).await?;
    Ok(Some((deleted, kept)))
}

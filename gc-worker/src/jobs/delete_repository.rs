//! A repository deletion job (GitLab's `DELETE …/registry/repositories/:id`, and what a
//! project or user deletion enqueues per repository): every tag, then the manifests
//! (parents before children), then the blob links, then the row — started over if a push
//! adds something meanwhile. A repository with an immutable tag is not deleted at all: the
//! job fails before anything is touched, naming the tags.

use berth_core::jobs::RepositoryTarget;
use berth_db::registry_deletions as content;
use berth_db::sea_orm::EntityTrait;
use chrono::Utc;

use super::delete_tags::delete_batch;
use super::{End, Held, immutable};

/// "No limit" for queries that must see every row (a LIMIT PostgreSQL accepts).
const ALL: u64 = i64::MAX as u64;

/// How many times a repository deletion starts over when pushes keep adding to it.
const MAX_PASSES: usize = 5;

/// Run the job.
pub(super) async fn run(held: &Held<'_>, target: &RepositoryTarget) -> anyhow::Result<End> {
    let db = held.db();
    let repo = target.repository_id;
    // Refuse before touching anything when an immutable tag would have to go.
    let protected = immutable(&db.read, target).await?;
    if !protected.is_empty() {
        let names = berth_db::tags::list_names(&db.read, repo, None, ALL).await?;
        let blocked: Vec<&String> = names
            .iter()
            .filter(|n| protected.matching(n).is_some())
            .collect();
        if !blocked.is_empty() {
            return Ok(End::Refused(immutable_error(&blocked)));
        }
    }
    for _ in 0..MAX_PASSES {
        // Tags, by name in batches.
        let mut after: Option<String> = None;
        loop {
            let names =
                berth_db::tags::list_names(&db.read, repo, after.as_deref(), held.batch()).await?;
            let Some(last) = names.last().cloned() else {
                break;
            };
            let Some((_, kept)) = delete_batch(held, target, &names, None).await? else {
                return Ok(End::Lost);
            };
            if !kept.is_empty() {
                return Ok(End::Refused(immutable_error(&kept)));
            }
            after = Some(last);
            if held.stopping() {
                return Ok(End::Stopped);
            }
        }
        // Manifests: those no index lists first, so an index goes before its children.
        loop {
            let Some(txn) = held.begin().await? else {
                return Ok(End::Lost);
            };
            let now = Utc::now();
            let batch = content::unreferenced_manifests(&txn, repo, held.batch()).await?;
            for m in &batch {
                berth_db::manifests::delete_and_queue(&txn, m, held.review_after(now), now).await?;
            }
            held.commit(txn, 0).await?;
            if batch.is_empty() {
                break;
            }
            if held.stopping() {
                return Ok(End::Stopped);
            }
        }
        // Blob links, then the row itself, in one last transaction that checks nothing
        // was pushed meanwhile.
        let now = Utc::now();
        let review_after = held.review_after(now);
        loop {
            let Some(txn) = held.begin().await? else {
                return Ok(End::Lost);
            };
            let unlinked =
                content::unlink_blobs(&txn, repo, held.batch() * 5, review_after, now).await?;
            held.commit(txn, 0).await?;
            if unlinked == 0 {
                break;
            }
        }
        let Some(txn) = held.begin().await? else {
            return Ok(End::Lost);
        };
        let tags_left = !berth_db::tags::list_names(&txn, repo, None, 1)
            .await?
            .is_empty();
        if tags_left || content::has_manifests(&txn, repo).await? {
            txn.rollback().await?;
            continue;
        }
        content::unlink_blobs(&txn, repo, ALL, review_after, now).await?;
        berth_db::entity::repositories::Entity::delete_by_id(repo)
            .exec(&txn)
            .await?;
        if !held.succeed_in(&txn).await? {
            txn.rollback().await?;
            return Ok(End::Lost);
        }
        txn.commit().await?;
        return Ok(End::Done { recorded: true });
    }
    Ok(End::Refused(
        "the repository kept receiving pushes while it was being deleted".into(),
    ))
}

fn immutable_error(tags: &[impl AsRef<str>]) -> String {
    let mut names: Vec<&str> = tags.iter().map(AsRef::as_ref).take(10).collect();
    names.sort_unstable();
    let more = if tags.len() > 10 { ", …" } else { "" };
    format!(
        "the repository has immutable tags, which cannot be deleted ({}{more}); remove the project's immutable tag rules first",
        names.join(", ")
    )
}

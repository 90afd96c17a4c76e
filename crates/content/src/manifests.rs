//! Putting and deleting manifests: a manifest with its layer and child links, its tag and
//! the review rows the change implies, in one transaction. Immutable tags and storage
//! limits are checked inside that transaction, on the rows the write itself reads, so a
//! concurrent change cannot slip past them.

use berth_core::Digest;
use berth_core::manifest::{Content as Body, Manifest};
use berth_db::manifests::{NewLayer, NewManifest};
use berth_db::{blobs, gc, gc_review, manifests, repositories, tags, usage};
use chrono::Utc;
use sea_orm::ConnectionTrait;

use crate::error::{ContentError, Missing, Protected};
use crate::retry::with_retry;
use crate::{Content, Immutable, Result, rules};

/// A manifest to store.
#[derive(Debug, Clone, Copy)]
pub struct PutManifest<'a> {
    /// The repository's full name (created on first push).
    pub repository: &'a str,
    /// The tag to point at it, if pushed by tag.
    pub tag: Option<&'a str>,
    /// Its canonical digest.
    pub digest: &'a Digest,
    /// The parsed manifest.
    pub manifest: &'a Manifest,
    /// The exact bytes pushed.
    pub payload: &'a [u8],
}

/// What a manifest deletion removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedManifest {
    /// The tags that pointed at it, sorted.
    pub tags: Vec<String>,
}

impl Content {
    /// Store a manifest (and tag it). Moving an existing tag an immutable rule matches to
    /// another manifest is refused (re-pushing the same manifest is not a move); a tagging
    /// write that would exceed a storage limit is refused and rolled back whole.
    #[tracing::instrument(skip_all, fields(repository.name = put.repository, manifest.digest = %put.digest, tag = put.tag))]
    pub async fn put_manifest(&self, put: PutManifest<'_>, immutable: Immutable<'_>) -> Result<()> {
        with_retry("put_manifest", || self.put_once(put, immutable)).await
    }

    async fn put_once(&self, put: PutManifest<'_>, immutable: Immutable<'_>) -> Result<()> {
        let now = Utc::now();
        let review_after = self.review_after(now);
        let d = put.digest.to_string();
        let txn = self.db.begin_write().await?;
        // Only live content counts towards usage, so only a write that makes content live
        // can exceed a limit: a tag, or a referrer (a signature, an SBOM), which lives as
        // long as its subject. Lock order 1: the root namespace, before anything else.
        let referrer = put.tag.is_none() && put.manifest.subject.is_some();
        let limits = match put.tag.is_some() || referrer {
            true => quota_limits(&txn, put.repository).await?,
            false => Vec::new(),
        };
        let repo = repositories::get_or_create(&txn, put.repository, now).await?;
        let mut existing = manifests::find_by_digest(&txn, repo.id, &d).await?;
        if let (Some(_), Some(m)) = (put.tag, &existing) {
            // Lock order 2, before tagging: hold the manifest's GC review row, then look
            // again. A GC worker that deleted the manifest meanwhile has committed by now,
            // and the manifest is stored again below from this request's bytes.
            gc_review::lock_manifest_review(&txn, repo.id, m.id).await?;
            existing = manifests::find_by_digest(&txn, repo.id, &d).await?;
        }
        let manifest_id = match existing {
            Some(existing) => existing.id,
            None => {
                // A referrer pushed by digest: the usage before it, to tell whether it adds.
                let before = match referrer && !limits.is_empty() {
                    true => Some(scope_usages(&txn, &limits).await?),
                    false => None,
                };
                let id = insert(&txn, repo.id, put, now).await?;
                if let Some(before) = before {
                    check_growth(&txn, &limits, &before).await?;
                }
                if put.tag.is_none() {
                    // Pushed by digest: nothing keeps it yet, review it later.
                    gc::enqueue_manifest(
                        &txn,
                        repo.id,
                        id,
                        gc::Event::ManifestUpload,
                        review_after,
                        now,
                    )
                    .await?;
                }
                id
            }
        };
        if let Some(tag) = put.tag {
            // With a limit, what the tag pointed at before tells the check what the push adds.
            let before = match limits.is_empty() {
                true => None,
                false => Some(tags::find(&txn, repo.id, tag).await?.map(|t| t.manifest_id)),
            };
            if let Some(previous) = tags::upsert(&txn, repo.id, tag, manifest_id, now).await? {
                // The tag existed and pointed elsewhere, as read by the write itself.
                // Returning drops the transaction: it rolls back, the tag keeps its manifest.
                let rules = rules(&txn, immutable).await?;
                if let Some(pattern) = rules.matching(tag) {
                    return Err(immutable_error(tag, pattern, Protected::Overwrite));
                }
                gc::enqueue_manifest(
                    &txn,
                    repo.id,
                    previous,
                    gc::Event::TagSwitch,
                    review_after,
                    now,
                )
                .await?;
            }
            if let Some(previous) = before
                && previous != Some(manifest_id)
            {
                let pending = usage::TagOverride {
                    repository_id: repo.id,
                    tag,
                    previous,
                };
                if let Some(over) = usage::exceeded(&txn, &limits, pending).await? {
                    return Err(ContentError::QuotaExceeded {
                        limit: over.limit,
                        usage: over.usage,
                    });
                }
            }
        }
        repositories::touch_pushed(&txn, repo.id, now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Delete a manifest with all its tags; its blobs, index children, subject and
    /// referrers are queued for review (never deleted here: GC decides, so what other
    /// manifests share stays). Refused while an immutable rule matches one of its tags, or
    /// while an index of the repository references it.
    #[tracing::instrument(skip_all, fields(repository.id = repository_id, manifest.digest = %digest))]
    pub async fn delete_manifest(
        &self,
        repository_id: i64,
        digest: &Digest,
        immutable: Immutable<'_>,
    ) -> Result<DeletedManifest> {
        with_retry("delete_manifest", || {
            self.delete_manifest_once(repository_id, digest, immutable)
        })
        .await
    }

    async fn delete_manifest_once(
        &self,
        repository_id: i64,
        digest: &Digest,
        immutable: Immutable<'_>,
    ) -> Result<DeletedManifest> {
        let now = Utc::now();
        let txn = self.db.begin_write().await?;
        let d = digest.to_string();
        let Some(found) = manifests::find_by_digest(&txn, repository_id, &d).await? else {
            return Err(ContentError::ManifestUnknown);
        };
        // Lock order 2 then 3: the review row (a worker reviewing it finishes first), then
        // the manifest row (a tag being pointed at it waits), then read it again: a worker
        // may have deleted it meanwhile.
        gc_review::lock_manifest_review(&txn, repository_id, found.id).await?;
        manifests::lock(&txn, found.id).await?;
        let Some(m) = manifests::find_by_digest(&txn, repository_id, &d).await? else {
            return Err(ContentError::ManifestUnknown);
        };
        let mut names: Vec<String> = tags::for_manifest(&txn, m.id)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.sort();
        let rules = rules(&txn, immutable).await?;
        if let Some((tag, pattern)) = names.iter().find_map(|t| rules.matching(t).map(|p| (t, p))) {
            return Err(immutable_error(tag, pattern, Protected::DeleteManifest));
        }
        if manifests::is_referenced_by_index(&txn, m.id).await? {
            return Err(ContentError::ManifestReferenced);
        }
        manifests::delete_and_queue(&txn, &m, self.review_after(now), now).await?;
        txn.commit().await?;
        tracing::info!(tags = names.len(), "deleted manifest with its tags");
        Ok(DeletedManifest { tags: names })
    }
}

/// Insert the manifest with its layer rows and child links, after checking every
/// referenced blob is linked to the repository and every child is in it.
async fn insert(
    txn: &impl ConnectionTrait,
    repository_id: i64,
    put: PutManifest<'_>,
    now: chrono::DateTime<Utc>,
) -> Result<i64> {
    let (layers, children) = resolve_references(txn, repository_id, put.manifest).await?;
    let m = put.manifest;
    let config_digest = match &m.content {
        Body::Image { config, .. } => Some(config.digest.to_string()),
        Body::Index { .. } => None,
    };
    let new = NewManifest {
        repository_id,
        digest: put.digest.to_string(),
        media_type: m.media_type.clone(),
        artifact_type: m.artifact_type.clone(),
        subject_digest: m.subject.as_ref().map(|s| s.digest.to_string()),
        config_digest,
        payload: put.payload.to_vec(),
    };
    // A blob or child the GC deleted after `resolve_references` read it fails the foreign
    // key: the same answer as if it had been missing then.
    manifests::insert(txn, new, layers, children, now)
        .await
        .map_err(|e| match berth_db::classify(&e) {
            berth_db::ErrorKind::ForeignKeyConflict => ContentError::ReferenceUnknown {
                digest: String::new(),
                what: Missing::Collected,
            },
            _ => e.into(),
        })
}

/// The storage limits covering a push into `repository` (one query). When there are any,
/// the root namespace's row is locked before anything is written, so pushes under it that
/// a limit covers take turns and each sees the usage the previous one left.
async fn quota_limits(txn: &impl ConnectionTrait, repository: &str) -> Result<Vec<usage::Limit>> {
    let Some(found) = usage::limits_for_repository(txn, repository).await? else {
        return Ok(Vec::new());
    };
    if let (false, Some(root)) = (found.limits.is_empty(), found.root_namespace_id) {
        usage::lock_root_namespace(txn, root).await?;
    }
    Ok(found.limits)
}

/// The usage of each limit's scope now.
async fn scope_usages(txn: &impl ConnectionTrait, limits: &[usage::Limit]) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(limits.len());
    for limit in limits {
        out.push(usage::usage(txn, usage::Scope::Path(&limit.path), None).await?);
    }
    Ok(out)
}

/// After a write: refused when it took a scope over its limit by growing it (a write that
/// adds nothing passes even over a lowered limit, so housekeeping is never blocked).
async fn check_growth(
    txn: &impl ConnectionTrait,
    limits: &[usage::Limit],
    before: &[i64],
) -> Result<()> {
    for (limit, before) in limits.iter().zip(before) {
        let after = usage::usage(txn, usage::Scope::Path(&limit.path), None).await?;
        if after > limit.bytes && after > *before {
            return Err(ContentError::QuotaExceeded {
                limit: limit.clone(),
                usage: after,
            });
        }
    }
    Ok(())
}

/// Layer rows and child manifest ids; every referenced blob must be linked to the
/// repository and every child manifest present in it.
async fn resolve_references(
    c: &impl ConnectionTrait,
    repository_id: i64,
    manifest: &Manifest,
) -> Result<(Vec<NewLayer>, Vec<i64>)> {
    match &manifest.content {
        Body::Image { config, layers } => {
            let mut digests: Vec<String> = std::iter::once(config)
                .chain(layers.iter())
                .filter(|d| !d.is_foreign())
                .map(|d| d.digest.to_string())
                .collect();
            digests.sort();
            digests.dedup();
            let present = blobs::linked_among(c, repository_id, digests.clone()).await?;
            if let Some(missing) = digests.iter().find(|d| !present.contains(d)) {
                return Err(ContentError::ReferenceUnknown {
                    digest: missing.clone(),
                    what: Missing::Blob,
                });
            }
            let rows = layers
                .iter()
                .filter(|l| !l.is_foreign())
                .map(|l| NewLayer {
                    digest: l.digest.to_string(),
                    media_type: l.media_type.clone(),
                    size: l.size,
                })
                .collect();
            Ok((rows, Vec::new()))
        }
        Body::Index {
            manifests: children,
        } => {
            let digests: Vec<String> = children.iter().map(|d| d.digest.to_string()).collect();
            let mut found = manifests::ids_among(c, repository_id, digests.clone()).await?;
            // Lock order 2, before referencing them: hold the children's GC review rows in
            // id order, then look again; a child a GC worker deleted meanwhile is missing.
            let mut ids: Vec<i64> = found.iter().map(|(_, id)| *id).collect();
            ids.sort_unstable();
            ids.dedup();
            for id in &ids {
                gc_review::lock_manifest_review(c, repository_id, *id).await?;
            }
            if !ids.is_empty() {
                found = manifests::ids_among(c, repository_id, digests.clone()).await?;
            }
            if let Some(missing) = digests
                .iter()
                .find(|d| !found.iter().any(|(fd, _)| fd == *d))
            {
                return Err(ContentError::ReferenceUnknown {
                    digest: missing.clone(),
                    what: Missing::Manifest,
                });
            }
            Ok((Vec::new(), found.into_iter().map(|(_, id)| id).collect()))
        }
    }
}

/// The refusal for an immutable `tag`.
pub(crate) fn immutable_error(tag: &str, pattern: &str, action: Protected) -> ContentError {
    ContentError::TagImmutable {
        tag: tag.to_owned(),
        pattern: pattern.to_owned(),
        action,
    }
}

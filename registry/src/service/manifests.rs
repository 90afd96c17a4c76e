//! Manifest writes: validate references, then store the manifest, its links and tag, and the
//! GC review rows the change implies, in one transaction. Immutable tags are checked inside
//! that transaction, on the rows the write itself reads, so a race cannot slip past.

use berth_core::immutability::TagPatterns;
use berth_core::manifest::{Content, Manifest};
use berth_core::{Digest, ErrorCode, RepoName};
use berth_db::manifests::{NewLayer, NewManifest};
use berth_db::{blobs, gc, manifests, repositories, tags};
use serde_json::json;

use crate::error::{RegistryError, Result};
use crate::state::AppState;

/// Store `payload` (already parsed as `manifest`, digest `digest`) in `name`, tagging it
/// with `tag` if given. Moving an existing tag that `immutable` matches to another manifest
/// is `TAG_IMMUTABLE` (re-pushing the same manifest is not a move).
pub async fn put(
    state: &AppState,
    name: &RepoName,
    tag: Option<&str>,
    digest: &Digest,
    manifest: &Manifest,
    payload: Vec<u8>,
    immutable: &TagPatterns,
) -> Result<()> {
    super::retry::on_conflict(|| {
        put_once(
            state,
            name,
            tag,
            digest,
            manifest,
            payload.clone(),
            immutable,
        )
    })
    .await
}

async fn put_once(
    state: &AppState,
    name: &RepoName,
    tag: Option<&str>,
    digest: &Digest,
    manifest: &Manifest,
    payload: Vec<u8>,
    immutable: &TagPatterns,
) -> Result<()> {
    let now = chrono::Utc::now();
    let review_after = state.review_after(now);
    let d = digest.to_string();
    let txn = state.db.begin_write().await?;
    let repo = repositories::get_or_create(&txn, name.as_str(), now).await?;
    let manifest_id = match manifests::find_by_digest(&txn, repo.id, &d).await? {
        Some(existing) => existing.id,
        None => {
            let (layers, children) = resolve_references(&txn, repo.id, manifest).await?;
            let config_digest = match &manifest.content {
                Content::Image { config, .. } => Some(config.digest.to_string()),
                Content::Index { .. } => None,
            };
            let new = NewManifest {
                repository_id: repo.id,
                digest: d.clone(),
                media_type: manifest.media_type.clone(),
                artifact_type: manifest.artifact_type.clone(),
                subject_digest: manifest.subject.as_ref().map(|s| s.digest.to_string()),
                config_digest,
                payload,
            };
            let id = manifests::insert(&txn, new, layers, children, now).await?;
            if tag.is_none() {
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
    if let Some(tag) = tag
        && let Some(previous) = tags::upsert(&txn, repo.id, tag, manifest_id, now).await?
    {
        // The tag existed and pointed elsewhere, as read by the write itself. Returning
        // drops the transaction: it rolls back, the tag keeps its manifest.
        if let Some(pattern) = immutable.matching(tag) {
            return Err(immutable_error(tag, pattern, "overwritten"));
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
    repositories::touch_pushed(&txn, repo.id, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Layer rows and child manifest ids; every referenced blob must be linked to the
/// repository and every child manifest present in it.
async fn resolve_references(
    c: &impl sea_orm::ConnectionTrait,
    repository_id: i64,
    manifest: &Manifest,
) -> Result<(Vec<NewLayer>, Vec<i64>)> {
    match &manifest.content {
        Content::Image { config, layers } => {
            let wanted: Vec<_> = std::iter::once(config)
                .chain(layers.iter())
                .filter(|d| !d.is_foreign())
                .collect();
            let mut digests: Vec<String> = wanted.iter().map(|d| d.digest.to_string()).collect();
            digests.sort();
            digests.dedup();
            let present = blobs::linked_among(c, repository_id, digests.clone()).await?;
            if let Some(missing) = digests.iter().find(|d| !present.contains(d)) {
                return Err(RegistryError::new(ErrorCode::ManifestBlobUnknown)
                    .message(format!(
                        "blob {missing} is not in this repository; push it first"
                    ))
                    .detail(json!({ "digest": missing })));
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
        Content::Index {
            manifests: children,
        } => {
            let digests: Vec<String> = children.iter().map(|d| d.digest.to_string()).collect();
            let found = manifests::ids_among(c, repository_id, digests.clone()).await?;
            if let Some(missing) = digests
                .iter()
                .find(|d| !found.iter().any(|(fd, _)| fd == *d))
            {
                return Err(RegistryError::new(ErrorCode::ManifestBlobUnknown)
                    .message(format!(
                        "manifest {missing} is not in this repository; push it first"
                    ))
                    .detail(json!({ "digest": missing })));
            }
            Ok((Vec::new(), found.into_iter().map(|(_, id)| id).collect()))
        }
    }
}

/// `TAG_IMMUTABLE` naming the tag and the pattern that protects it.
fn immutable_error(tag: &str, pattern: &str, what: &str) -> RegistryError {
    RegistryError::new(ErrorCode::TagImmutable)
        .message(format!(
            "tag {tag} is immutable (it matches the project's immutable tag rule '{pattern}') and cannot be {what}"
        ))
        .detail(json!({ "tag": tag, "pattern": pattern }))
}

/// Delete a tag; its manifest is queued for review. A tag `immutable` matches stays
/// (`TAG_IMMUTABLE`).
pub async fn delete_tag(
    state: &AppState,
    repository_id: i64,
    tag: &str,
    immutable: &TagPatterns,
) -> Result<()> {
    super::retry::on_conflict(|| delete_tag_once(state, repository_id, tag, immutable)).await
}

async fn delete_tag_once(
    state: &AppState,
    repository_id: i64,
    tag: &str,
    immutable: &TagPatterns,
) -> Result<()> {
    let now = chrono::Utc::now();
    let txn = state.db.begin_write().await?;
    tags::delete_and_queue(&txn, repository_id, tag, state.review_after(now), now)
        .await?
        .ok_or_else(|| {
            RegistryError::new(ErrorCode::ManifestUnknown).message(format!("tag {tag} not found"))
        })?;
    // Checked on the row the delete removed; returning rolls the delete (and its queue row)
    // back.
    if let Some(pattern) = immutable.matching(tag) {
        return Err(immutable_error(tag, pattern, "deleted"));
    }
    txn.commit().await?;
    Ok(())
}

/// Delete a manifest and its tags; its blobs and children are queued for review. Refused
/// (`TAG_IMMUTABLE`) while a tag `immutable` matches points at it: GitLab refuses every
/// manifest delete once any pattern exists; Berth only those that would take such a tag.
pub async fn delete(
    state: &AppState,
    repository_id: i64,
    digest: &Digest,
    immutable: &TagPatterns,
) -> Result<()> {
    super::retry::on_conflict(|| delete_once(state, repository_id, digest, immutable)).await
}

async fn delete_once(
    state: &AppState,
    repository_id: i64,
    digest: &Digest,
    immutable: &TagPatterns,
) -> Result<()> {
    let now = chrono::Utc::now();
    let review_after = state.review_after(now);
    let txn = state.db.begin_write().await?;
    let m = manifests::find_by_digest(&txn, repository_id, &digest.to_string())
        .await?
        .ok_or_else(|| RegistryError::new(ErrorCode::ManifestUnknown))?;
    if !immutable.is_empty() {
        manifests::lock(&txn, m.id).await?;
        for t in tags::for_manifest(&txn, m.id).await? {
            if let Some(pattern) = immutable.matching(&t.name) {
                return Err(immutable_error(
                    &t.name,
                    pattern,
                    &format!("deleted, so manifest {digest} cannot be deleted either"),
                ));
            }
        }
    }
    if manifests::is_referenced_by_index(&txn, m.id).await? {
        return Err(RegistryError::new(ErrorCode::ManifestReferenced));
    }
    let blob_digests = manifests::blob_digests(&txn, &m).await?;
    let children = manifests::child_ids(&txn, m.id).await?;
    manifests::delete(&txn, m.id).await?;
    for b in blob_digests {
        gc::enqueue_blob(&txn, &b, gc::Event::ManifestDelete, review_after, now).await?;
    }
    for child in children {
        gc::enqueue_manifest(
            &txn,
            repository_id,
            child,
            gc::Event::IndexDelete,
            review_after,
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

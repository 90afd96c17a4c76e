//! Manifest writes: validate references, then store the manifest, its links and tag, and the
//! GC review rows the change implies, in one transaction. Immutable tags are checked inside
//! that transaction, on the rows the write itself reads, so a race cannot slip past.
//! Storage limits too: a tagging write that would take a project's or its root namespace's
//! deduplicated usage over a limit is refused (`QUOTA_EXCEEDED`, 403 like `DENIED`: a
//! refusal by policy, as GitLab and Harbor answer) and rolled back whole. Blob uploads are
//! not checked: untagged content does not count towards usage, and a blob may be shared with
//! what is already counted, so only the manifest write knows what a push adds.

use berth_core::immutability::TagPatterns;
use berth_core::manifest::{Content, Manifest};
use berth_core::{Digest, ErrorCode, RepoName};
use berth_db::manifests::{NewLayer, NewManifest};
use berth_db::{blobs, gc, gc_review, manifests, repositories, tags, usage};
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
    // Only tagged manifests count towards usage, so only a tagging write can exceed a limit.
    let limits = match tag {
        Some(_) => quota_limits(&txn, name).await?,
        None => Vec::new(),
    };
    let repo = repositories::get_or_create(&txn, name.as_str(), now).await?;
    let mut existing = manifests::find_by_digest(&txn, repo.id, &d).await?;
    if let (Some(_), Some(m)) = (tag, &existing) {
        // Before tagging: hold the manifest's GC review row, then look again. A GC worker
        // that deleted the manifest meanwhile has committed by now, and the manifest is
        // stored again below from this request's bytes (argument in berth-gc's `worker`).
        gc_review::lock_manifest_review(&txn, repo.id, m.id).await?;
        existing = manifests::find_by_digest(&txn, repo.id, &d).await?;
    }
    let manifest_id = match existing {
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
            // A blob or child the GC deleted after `resolve_references` read it fails the
            // foreign key: the same answer as if it had been missing then.
            let id = manifests::insert(&txn, new, layers, children, now)
                .await
                .map_err(|e| {
                    if berth_db::is_fk_violation(&e) {
                        RegistryError::new(ErrorCode::ManifestBlobUnknown).message(
                            "a referenced blob or manifest was garbage-collected; push it again",
                        )
                    } else {
                        e.into()
                    }
                })?;
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
    // With a limit, what the tag pointed at before tells the check what the push adds.
    let before = match tag {
        Some(tag) if !limits.is_empty() => {
            Some(tags::find(&txn, repo.id, tag).await?.map(|t| t.manifest_id))
        }
        _ => None,
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
    if let (Some(tag), Some(previous)) = (tag, before)
        && previous != Some(manifest_id)
    {
        let pending = usage::TagOverride {
            repository_id: repo.id,
            tag,
            previous,
        };
        // Returning drops the transaction: the whole push rolls back.
        if let Some(over) = usage::exceeded(&txn, &limits, pending).await? {
            return Err(quota_error(&over.limit, over.usage));
        }
    }
    repositories::touch_pushed(&txn, repo.id, now).await?;
    txn.commit().await?;
    Ok(())
}

/// The storage limits covering a push into `name` (one query). When there are any, the
/// root namespace's row is locked before anything is written, so pushes under it that a
/// limit covers take turns and each sees the usage the previous one left (the argument is
/// at [`berth_db::usage::lock_root_namespace`]).
async fn quota_limits(
    txn: &impl sea_orm::ConnectionTrait,
    name: &RepoName,
) -> Result<Vec<usage::Limit>> {
    let Some(found) = usage::limits_for_repository(txn, name.as_str()).await? else {
        return Ok(Vec::new());
    };
    if let (false, Some(root)) = (found.limits.is_empty(), found.root_namespace_id) {
        usage::lock_root_namespace(txn, root).await?;
    }
    Ok(found.limits)
}

/// `QUOTA_EXCEEDED` naming the scope, the usage the push would bring and the limit.
fn quota_error(limit: &usage::Limit, usage: i64) -> RegistryError {
    let scope = match limit.kind {
        usage::LimitKind::Project => "project",
        usage::LimitKind::Namespace => "namespace",
    };
    RegistryError::new(ErrorCode::QuotaExceeded)
        .message(format!(
            "storage limit exceeded for {scope} {}: this push would use {} of {} ({usage} of {} bytes)",
            limit.path,
            human_bytes(usage),
            human_bytes(limit.bytes),
            limit.bytes,
        ))
        .detail(json!({
            "scope": scope,
            "path": limit.path,
            "usage_bytes": usage,
            "limit_bytes": limit.bytes,
        }))
}

/// `bytes` in binary units with one decimal (`12.3 MiB`).
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes.abs() < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value.abs() < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
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
            let mut found = manifests::ids_among(c, repository_id, digests.clone()).await?;
            // Before referencing them: hold the children's GC review rows (in id order, so
            // two index pushes cannot deadlock), then look again; a child a GC worker
            // deleted meanwhile is missing now.
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
    // Locks the manifest's GC review row before untagging (see the function).
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
    // Review row before manifest row, the order a GC worker takes them in.
    gc_review::lock_manifest_review(&txn, repository_id, m.id).await?;
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
    // The one manifest deletion path, shared with the management API.
    manifests::delete_and_queue(&txn, &m, review_after, now).await?;
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12_897_485), "12.3 MiB");
        assert_eq!(human_bytes(10 << 30), "10.0 GiB");
    }

    #[test]
    fn quota_error_names_scope_usage_and_limit() {
        let limit = usage::Limit {
            kind: usage::LimitKind::Namespace,
            path: "acme".into(),
            bytes: 10 << 20,
        };
        let e = quota_error(&limit, 12_897_485);
        assert_eq!(e.code, ErrorCode::QuotaExceeded);
        let body = format!("{e:?}");
        assert!(body.contains(
            "storage limit exceeded for namespace acme: this push would use 12.3 MiB of 10.0 MiB (12897485 of 10485760 bytes)"
        ), "{body}");
    }
}

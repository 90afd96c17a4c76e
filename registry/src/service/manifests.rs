//! Manifest writes, as the `/v2/` API asks for them: each is one call into the content
//! library ([`berth_content`]), which owns the transaction, the lock order, the immutable
//! tag and storage limit checks and the GC review rows. What is left here is the OCI
//! wording of its refusals.

use berth_content::{Immutable, PutManifest};
use berth_core::immutability::TagPatterns;
use berth_core::manifest::Manifest;
use berth_core::{Digest, ErrorCode, RepoName};
use berth_db::usage;
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
    payload: &[u8],
    immutable: &TagPatterns,
) -> Result<()> {
    let put = PutManifest {
        repository: name.as_str(),
        tag,
        digest,
        manifest,
        payload,
    };
    Ok(state
        .content
        .put_manifest(put, Immutable::Given(immutable))
        .await?)
}

/// Delete a tag; its manifest is queued for review. A tag `immutable` matches stays
/// (`TAG_IMMUTABLE`).
pub async fn delete_tag(
    state: &AppState,
    repository_id: i64,
    tag: &str,
    immutable: &TagPatterns,
) -> Result<()> {
    Ok(state
        .content
        .delete_tag(repository_id, tag, Immutable::Given(immutable))
        .await?)
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
    state
        .content
        .delete_manifest(repository_id, digest, Immutable::Given(immutable))
        .await?;
    Ok(())
}

/// `QUOTA_EXCEEDED` naming the scope, the usage the push would bring and the limit.
pub(crate) fn quota_error(limit: &usage::Limit, usage: i64) -> RegistryError {
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

/// `TAG_IMMUTABLE` naming the tag and the pattern that protects it.
pub(crate) fn immutable_error(tag: &str, pattern: &str, what: &str) -> RegistryError {
    RegistryError::new(ErrorCode::TagImmutable)
        .message(format!(
            "tag {tag} is immutable (it matches the project's immutable tag rule '{pattern}') and cannot be {what}"
        ))
        .detail(json!({ "tag": tag, "pattern": pattern }))
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

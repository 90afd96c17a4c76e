//! Berth's own artifact deletion (SPEC 5, "delete one artifact by digest with all its
//! tags"): `DELETE /projects/:id/registry/repositories/:repository_id/manifests/:digest`.
//! Maintainer+ with an `api` token, as the registry's `delete` action it stands for (SPEC
//! 4.3; one tag alone is Developer+), written by the same database function as the
//! registry's `DELETE /v2/<name>/manifests/<digest>` ([`berth_db::manifests::delete_and_queue`]),
//! so the manifest, its tags and the GC review rows it implies change in one transaction.

use axum::extract::{Path, State};
use axum::routing::delete;
use axum::{Json, Router};
use berth_core::Digest;
use berth_core::immutability::TagPatterns;
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::registry::{RegistryNeed, project_repository, registry_project_for};
use crate::state::AppState;

/// Manifest routes.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/projects/{id}/registry/repositories/{repository_id}/manifests/{digest}",
        delete(delete_manifest),
    )
}

/// `DELETE /projects/:id/registry/repositories/:repository_id/manifests/:digest`
/// (whoever `/jwt/auth` would grant the registry's `delete`): 200 with the digest and the tags deleted with it; 400 for a malformed
/// digest, 404 for a digest unknown in the repository, 403 when an immutable rule of the
/// project matches one of its tags, 409 while an index references it. Refusing changes
/// nothing: every check runs inside the deleting transaction, on the locked manifest, and
/// returns before the commit. Its blobs and index children are only queued for GC review,
/// so other manifests sharing layers keep pulling. Registries cache manifests for at most
/// `BERTH_MANIFEST_CACHE_TTL` (≤ 3 s), so a pull may still succeed there that long after.
async fn delete_manifest(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, repository_id, digest)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_write()?;
    let ctx = registry_project_for(&state, Some(&caller), &id, RegistryNeed::Delete).await?;
    let r = project_repository(&state, &ctx.project, &repository_id).await?;
    let digest: Digest = digest
        .parse()
        .map_err(|_| ApiError::BadRequest("digest is invalid".into()))?;
    let now = chrono::Utc::now();
    let txn = state.db.begin_write().await?;
    let m = berth_db::manifests::find_by_digest(&txn, r.id, &digest.to_string())
        .await?
        .ok_or(ApiError::NotFound("Manifest"))?;
    // Held until the commit: a tag pointed at it meanwhile waits, so these are all its tags.
    berth_db::manifests::lock(&txn, m.id).await?;
    let mut tags: Vec<String> = berth_db::tags::for_manifest(&txn, m.id)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    tags.sort();
    let patterns = berth_db::tag_rules::patterns(&txn, ctx.project.id).await?;
    let (rules, invalid) = TagPatterns::compile(&patterns);
    if !invalid.is_empty() {
        tracing::warn!(project.id = ctx.project.id, patterns = ?invalid, "invalid immutable tag patterns ignored");
    }
    if let Some((tag, pattern)) = tags.iter().find_map(|t| rules.matching(t).map(|p| (t, p))) {
        return Err(ApiError::ForbiddenMessage(format!(
            "tag {tag} is immutable (pattern {pattern}), so manifest {digest} cannot be deleted"
        )));
    }
    if berth_db::manifests::is_referenced_by_index(&txn, m.id).await? {
        return Err(ApiError::Conflict(
            "the manifest is referenced by an index; delete the index first".into(),
        ));
    }
    berth_db::manifests::delete_and_queue(&txn, &m, state.review_after(now), now).await?;
    txn.commit().await?;
    tracing::info!(
        project.id = ctx.project.id,
        repository.id = r.id,
        manifest.digest = %digest,
        tags = tags.len(),
        "deleted manifest with its tags"
    );
    Ok(Json(json!({ "digest": digest.to_string(), "tags": tags })))
}

//! Berth's own artifact deletion (beyond GitLab: "delete one artifact by digest with all its
//! tags"): `DELETE /projects/:id/registry/repositories/:repository_id/manifests/:digest`.
//! Maintainer+ with an `api` token, as the registry's `delete` action it stands for (one
//! tag alone is Developer+), written by the same content-library call as the
//! registry's `DELETE /v2/<name>/manifests/<digest>` ([`berth_db::manifests::delete_and_queue`]),
//! so the manifest, its tags and the GC review rows it implies change in one transaction.

use axum::extract::{Path, State};
use axum::routing::delete;
use axum::{Json, Router};
use berth_content::Immutable;
use berth_core::Digest;
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
    // The content library holds the review row, then the manifest row, checks the
    // project's immutable rules and index references in the deleting transaction, and
    // retries a lost race: the same path as the registry's own delete.
    let deleted = state
        .content
        .delete_manifest(r.id, &digest, Immutable::OfProject(ctx.project.id))
        .await?;
    let tags = deleted.tags;
    tracing::info!(
        project.id = ctx.project.id,
        repository.id = r.id,
        manifest.digest = %digest,
        tags = tags.len(),
        "deleted manifest with its tags"
    );
    Ok(Json(json!({ "digest": digest.to_string(), "tags": tags })))
}

//! A repository's tags as GitLab shows them (SPEC 5): the listing, with offset pagination or
//! keyset pagination (`pagination=keyset`, `sort`, `last`: only a `rel="next"` link), and
//! one tag's details, and deleting one tag (Developer+, SPEC 4.3).

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::header::LINK;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_core::access::{RegistryAccess, Role};
use berth_core::immutability::TagPatterns;
use berth_db::registry_read as q;
use serde_json::{Value, json};

use super::caller::{Caller, MaybeCaller};
use super::error::{ApiError, ApiResult};
use super::lookup;
use super::params::{Params, opt_time, paged, time};
use super::registry::{project_repository, registry_project, tag_json};
use crate::state::AppState;

/// Tag routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{id}/registry/repositories/{repository_id}/tags",
            get(list_tags),
        )
        .route(
            "/projects/{id}/registry/repositories/{repository_id}/tags/{tag_name}",
            get(get_tag).delete(delete_tag),
        )
}

/// `GET /projects/:id/registry/repositories/:repository_id/tags`.
async fn list_tags(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    MaybeCaller(caller): MaybeCaller,
    Path((id, repository_id)): Path<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    let ctx = registry_project(&state, caller.as_ref(), &id).await?;
    let r = project_repository(&state, &ctx.project, &repository_id).await?;
    let page = p.page()?;
    let c = &state.db.read;
    match p.str("pagination").as_deref() {
        None | Some("offset") => {
            let (names, total) = q::tag_page(c, r.id, page.offset(), page.per_page()).await?;
            let items = names.iter().map(|t| tag_json(&state, &r.name, t)).collect();
            Ok(paged(&state, &uri, page, total, items))
        }
        Some("keyset") => {
            let desc = match p.str("sort").as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(_) => {
                    return Err(ApiError::BadRequest(
                        "sort does not have a valid value".into(),
                    ));
                }
            };
            let per_page = page.per_page();
            let last = p.str("last");
            let mut names =
                q::tag_keyset(c, r.id, last.as_deref(), desc, per_page.saturating_add(1)).await?;
            let more = names.len() as u64 > per_page;
            names.truncate(usize::try_from(per_page).unwrap_or(usize::MAX));
            let mut headers = HeaderMap::new();
            if more && let Some(last) = names.last() {
                let link = format!("<{}>; rel=\"next\"", next_url(&state, &uri, last));
                if let Ok(v) = HeaderValue::from_str(&link) {
                    headers.insert(LINK, v);
                }
            }
            let items: Vec<Value> = names.iter().map(|t| tag_json(&state, &r.name, t)).collect();
            Ok((headers, Json(Value::Array(items))).into_response())
        }
        Some(_) => Err(ApiError::BadRequest(
            "pagination does not have a valid value".into(),
        )),
    }
}

/// The request URL on the public base with `last` set to `last`.
fn next_url(state: &AppState, uri: &Uri, last: &str) -> String {
    let mut pairs: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("last="))
        .map(str::to_owned)
        .collect();
    pairs.push(format!(
        "last={}",
        form_urlencoded::byte_serialize(last.as_bytes()).collect::<String>()
    ));
    format!(
        "{}{}?{}",
        state.cfg.auth_url.trim_end_matches('/'),
        uri.path(),
        pairs.join("&")
    )
}

/// `GET /projects/:id/registry/repositories/:repository_id/tags/:tag_name`.
async fn get_tag(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path((id, repository_id, tag_name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let ctx = registry_project(&state, caller.as_ref(), &id).await?;
    let r = project_repository(&state, &ctx.project, &repository_id).await?;
    let c = &state.db.read;
    let tag = berth_db::tags::find(c, r.id, &tag_name)
        .await?
        .ok_or(ApiError::NotFound("Tag"))?;
    let manifest = q::manifest(c, tag.manifest_id)
        .await?
        .ok_or(ApiError::NotFound("Tag"))?;
    let revision = manifest
        .config_digest
        .as_deref()
        .map(|d| d.split_once(':').map_or(d, |(_, hex)| hex).to_owned());
    let short_revision = revision
        .as_deref()
        .map(|r| r.chars().take(9).collect::<String>());
    let total_size = q::distinct_blob_bytes(c, &[manifest.id]).await?;
    let mut v = tag_json(&state, &r.name, &tag.name);
    if let Some(obj) = v.as_object_mut() {
        obj.extend([
            ("revision".to_owned(), json!(revision)),
            ("short_revision".to_owned(), json!(short_revision)),
            ("digest".to_owned(), json!(manifest.digest)),
            ("created_at".to_owned(), json!(time(tag.updated_at))),
            ("total_size".to_owned(), json!(total_size)),
            // Written by the registries in batches (up to BERTH_USAGE_FLUSH_INTERVAL late).
            ("pull_count".to_owned(), json!(tag.pull_count)),
            ("last_pulled_at".to_owned(), opt_time(tag.last_pulled_at)),
        ]);
    }
    Ok(Json(v))
}

/// `DELETE /projects/:id/registry/repositories/:repository_id/tags/:tag_name` (Developer+):
/// 200, 404 for an unknown tag, 403 for a tag an immutable rule of the project matches.
/// Written exactly as the registry's own tag deletion ([`berth_db::tags::delete_and_queue`]):
/// the tag row goes and the manifest it pointed at is queued for GC review, in one
/// transaction. Registries cache manifests by tag for at most `BERTH_MANIFEST_CACHE_TTL`
/// (≤ 3 s), so a pull by this tag may still succeed there that long after the delete;
/// the tag listing is read from the database and drops it at once.
async fn delete_tag(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, repository_id, tag_name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    let ctx = lookup::project_with_role(&state.db.read, &caller, &id, Role::Developer).await?;
    if ctx.access().registry == RegistryAccess::Disabled {
        return Err(ApiError::NotFound("Project"));
    }
    let r = project_repository(&state, &ctx.project, &repository_id).await?;
    let now = chrono::Utc::now();
    let txn = state.db.begin_write().await?;
    berth_db::tags::delete_and_queue(&txn, r.id, &tag_name, state.review_after(now), now)
        .await?
        .ok_or(ApiError::NotFound("Tag"))?;
    // The rules are read in the transaction that deleted the row; refusing returns before
    // the commit, which rolls the delete and its queue row back.
    let patterns = berth_db::tag_rules::patterns(&txn, ctx.project.id).await?;
    let (rules, invalid) = TagPatterns::compile(&patterns);
    if !invalid.is_empty() {
        tracing::warn!(project.id = ctx.project.id, patterns = ?invalid, "invalid immutable tag patterns ignored");
    }
    if let Some(pattern) = rules.matching(&tag_name) {
        return Err(ApiError::ForbiddenMessage(format!(
            "tag is immutable (pattern {pattern})"
        )));
    }
    txn.commit().await?;
    tracing::info!(
        project.id = ctx.project.id,
        repository.id = r.id,
        tag = %tag_name,
        "deleted tag"
    );
    Ok(StatusCode::OK)
}

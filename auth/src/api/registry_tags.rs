//! A repository's tags as GitLab shows them: the listing, sorted by name or (Berth)
//! by time and filtered by name or time, with offset pagination or keyset pagination
//! (`pagination=keyset`, `sort`, `last`: only a `rel="next"` link), one tag's details, and
//! deleting one tag (Developer+, as in GitLab).

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::header::LINK;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_content::Immutable;
use berth_core::access::Role;
use berth_db::registry_read as q;
use berth_db::tag_listing::{self as listing, Cursor, TagOrder, TagQuery};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::caller::{Caller, MaybeCaller};
use super::error::{ApiError, ApiResult};
use super::params::{Params, opt_time, paged, time};
use super::registry::{
    RegistryNeed, project_repository, registry_project, registry_project_for, tag_json,
};
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

/// `GET /projects/:id/registry/repositories/:repository_id/tags`: `order_by`
/// (`name`, default; Berth's `created_at`, `last_pulled_at`), `sort` (`asc`, default;
/// `desc`), filters `name` (case-insensitive substring), `created_after`/`created_before`
/// and `pulled_after`/`pulled_before` (dates or RFC 3339 times; `*_after` inclusive), and
/// either offset pages (`X-Total` counts the filtered tags) or `pagination=keyset`, whose
/// `last` is a tag name in name order and the opaque marker of the `next` link in a time
/// order.
async fn list_tags(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    MaybeCaller(caller): MaybeCaller,
    Path((id, repository_id)): Path<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    let ctx = registry_project(&state, caller.as_ref(), &id).await?;
    let r = project_repository(&state, &ctx.project, &repository_id).await?;
    let query = tag_query(&p)?;
    let page = p.page()?;
    let c = &state.db.read;
    match p.str("pagination")?.as_deref() {
        None | Some("offset") => {
            let (rows, total) =
                listing::page(c, r.id, &query, page.offset(), page.per_page()).await?;
            let items = rows
                .iter()
                .map(|t| tag_json(&state, &r.name, &t.name))
                .collect();
            Ok(paged(&state, &uri, page, total, items))
        }
        Some("keyset") => {
            let cursor = match p.str("last")? {
                None => None,
                Some(last) => Some(decode_cursor(query.order, &last)?),
            };
            let per_page = page.per_page();
            let mut rows =
                listing::keyset(c, r.id, &query, cursor.as_ref(), per_page.saturating_add(1))
                    .await?;
            let more = rows.len() as u64 > per_page;
            rows.truncate(usize::try_from(per_page).unwrap_or(usize::MAX));
            let mut headers = HeaderMap::new();
            if more && let Some(last) = rows.last() {
                let marker = encode_cursor(query.order, last);
                let link = format!("<{}>; rel=\"next\"", next_url(&state, &uri, &marker));
                if let Ok(v) = HeaderValue::from_str(&link) {
                    headers.insert(LINK, v);
                }
            }
            let items: Vec<Value> = rows
                .iter()
                .map(|t| tag_json(&state, &r.name, &t.name))
                .collect();
            Ok((headers, Json(Value::Array(items))).into_response())
        }
        Some(_) => Err(ApiError::BadRequest(
            "pagination does not have a valid value".into(),
        )),
    }
}

/// The listing's order, direction and filters from the request.
fn tag_query(p: &Params) -> ApiResult<TagQuery> {
    let invalid = |key: &str| ApiError::BadRequest(format!("{key} does not have a valid value"));
    let order = match p.str("order_by")?.as_deref() {
        None | Some("name") => TagOrder::Name,
        Some("created_at") => TagOrder::CreatedAt,
        Some("last_pulled_at") => TagOrder::LastPulledAt,
        Some(_) => return Err(invalid("order_by")),
    };
    let desc = match p.str("sort")?.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(invalid("sort")),
    };
    let time = |key: &str| -> ApiResult<Option<DateTime<Utc>>> { Ok(p.date(key)?.flatten()) };
    Ok(TagQuery {
        order,
        desc,
        name: p.str("name")?,
        created_after: time("created_after")?,
        created_before: time("created_before")?,
        pulled_after: time("pulled_after")?,
        pulled_before: time("pulled_before")?,
    })
}

/// The keyset marker after `tag`: its name in name order (GitLab's `last`), else
/// base64url of `<RFC 3339 time, empty if never pulled>|<name>` (the shape GitLab's
/// registry uses for its time-ordered markers).
fn encode_cursor(order: TagOrder, tag: &berth_db::entity::tags::Model) -> String {
    if order == TagOrder::Name {
        return tag.name.clone();
    }
    let time = order
        .time_of(tag)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true))
        .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(format!("{time}|{}", tag.name))
}

/// The inverse of [`encode_cursor`]; 400 for a marker this order did not produce.
fn decode_cursor(order: TagOrder, last: &str) -> ApiResult<Cursor> {
    if order == TagOrder::Name {
        return Ok(Cursor {
            time: None,
            name: last.to_owned(),
        });
    }
    let invalid = || ApiError::BadRequest("last is invalid for this order_by".into());
    let raw = URL_SAFE_NO_PAD.decode(last).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (time, name) = raw.split_once('|').ok_or_else(invalid)?;
    let time = match time {
        "" if order == TagOrder::LastPulledAt => None,
        t => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| invalid())?
                .with_timezone(&Utc),
        ),
    };
    Ok(Cursor {
        time,
        name: name.to_owned(),
    })
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
/// Written exactly as the registry's own tag deletion ([`berth_content::Content::delete_tag`]):
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
    let need = RegistryNeed::ViewWithRole(Role::Developer);
    let ctx = registry_project_for(&state, Some(&caller), &id, need).await?;
    let r = project_repository(&state, &ctx.project, &repository_id).await?;
    // The project's immutable rules are read in the deleting transaction.
    state
        .content
        .delete_tag(r.id, &tag_name, Immutable::OfProject(ctx.project.id))
        .await?;
    tracing::info!(
        project.id = ctx.project.id,
        repository.id = r.id,
        tag = %tag_name,
        "deleted tag"
    );
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, pulled: Option<DateTime<Utc>>) -> berth_db::entity::tags::Model {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        berth_db::entity::tags::Model {
            id: 1,
            repository_id: 1,
            name: name.into(),
            manifest_id: 1,
            created_at: t,
            updated_at: t,
            last_pulled_at: pulled,
            pull_count: 0,
        }
    }

    #[test]
    fn cursors_round_trip_in_every_order() {
        let t = tag("v1.0", None);
        for order in [TagOrder::Name, TagOrder::CreatedAt, TagOrder::LastPulledAt] {
            let cursor = decode_cursor(order, &encode_cursor(order, &t)).unwrap();
            assert_eq!(cursor.name, "v1.0");
            assert_eq!(cursor.time, order.time_of(&t), "{order:?}");
        }
        // Name order keeps GitLab's plain tag name.
        assert_eq!(encode_cursor(TagOrder::Name, &t), "v1.0");
        let pulled = tag("b", Some(t.updated_at));
        let c = decode_cursor(
            TagOrder::LastPulledAt,
            &encode_cursor(TagOrder::LastPulledAt, &pulled),
        )
        .unwrap();
        assert_eq!(c.time, Some(t.updated_at));
    }

    #[test]
    fn foreign_markers_are_refused() {
        for bad in ["v1.0", "!!!", "bm8tc2VwYXJhdG9y", "fGI"] {
            assert!(decode_cursor(TagOrder::CreatedAt, bad).is_err(), "{bad}");
        }
        // A never-pulled marker is only valid in the order that has NULLs.
        assert!(decode_cursor(TagOrder::LastPulledAt, "fGI").is_ok());
    }
}

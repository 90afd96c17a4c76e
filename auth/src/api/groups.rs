//! `/groups`: nested groups. Anyone signed in creates top-level groups (and becomes their
//! Owner); Maintainers of a group create subgroups; Owners update and delete (empty) groups.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_core::access::{Role, Visibility};
use berth_db::entity::namespaces;
use berth_db::members::Source;
use berth_db::namespaces::{GroupQuery, NewGroup, Viewer};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use super::caller::{Caller, MaybeCaller};
use super::error::{ApiError, ApiResult};
use super::lookup;
use super::params::{Params, paged, time, valid_path};
use super::storage;
use crate::authz;
use crate::state::AppState;

/// Who is looking, for listings.
pub fn viewer(caller: Option<&Caller>) -> Viewer {
    match caller {
        None => Viewer::Anonymous,
        Some(c) if c.is_admin() => Viewer::Admin,
        Some(c) => Viewer::User(c.user().id),
    }
}

/// Reads by a signed-in caller need a read scope; anonymous reads see public things.
pub fn require_read(caller: Option<&Caller>) -> ApiResult<()> {
    caller.map_or(Ok(()), Caller::require_read)
}

/// A visibility parameter, or `default`.
pub fn visibility(p: &Params, default: Visibility) -> ApiResult<Visibility> {
    match p.str("visibility")? {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::BadRequest("visibility does not have a valid value".into())),
    }
}

/// How public a visibility is (private 0, internal 1, public 2).
pub fn rank(v: &str) -> u8 {
    match v.parse() {
        Ok(Visibility::Public) => 2,
        Ok(Visibility::Internal) => 1,
        _ => 0,
    }
}

/// GitLab's path from a name: lowercase, runs of other characters become `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.trim().chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_alphanumeric() || ch == '.' || ch == '_' {
            out.push(ch);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c| c == '-' || c == '.' || c == '_')
        .to_owned()
}

/// Display names along namespace paths (`Acme / Platform`), for `full_name` and
/// `name_with_namespace`, in one query.
pub async fn full_names<'a>(
    c: &impl ConnectionTrait,
    paths: impl IntoIterator<Item = &'a str>,
) -> ApiResult<HashMap<String, String>> {
    let paths: Vec<&str> = paths.into_iter().collect();
    let mut prefixes: Vec<String> = Vec::new();
    for p in &paths {
        let segs: Vec<&str> = p.split('/').collect();
        prefixes.extend((1..=segs.len()).map(|n| segs[..n].join("/")));
    }
    prefixes.sort();
    prefixes.dedup();
    let names: HashMap<String, String> = berth_db::namespaces::by_full_paths(c, prefixes)
        .await?
        .into_iter()
        .map(|n| (n.full_path, n.name))
        .collect();
    Ok(paths
        .iter()
        .map(|p| {
            let segs: Vec<&str> = p.split('/').collect();
            let full = (1..=segs.len())
                .map(|n| {
                    let prefix = segs[..n].join("/");
                    names.get(&prefix).cloned().unwrap_or(prefix)
                })
                .collect::<Vec<_>>()
                .join(" / ");
            ((*p).to_owned(), full)
        })
        .collect())
}

/// A group as GitLab shows it.
pub fn group_json(state: &AppState, g: &namespaces::Model, full_name: &str) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "path": g.path,
        "full_path": g.full_path,
        "full_name": full_name,
        "parent_id": g.parent_id,
        "visibility": g.visibility,
        "description": "",
        "avatar_url": null,
        "web_url": format!("{}/groups/{}", state.cfg.auth_url.trim_end_matches('/'), g.full_path),
        "created_at": time(g.created_at),
        "registry_storage_limit": g.registry_storage_limit,
    })
}

/// Groups as JSON, with their full names.
pub async fn groups_json(state: &AppState, groups: &[namespaces::Model]) -> ApiResult<Vec<Value>> {
    let names = full_names(&state.db.read, groups.iter().map(|g| g.full_path.as_str())).await?;
    Ok(groups
        .iter()
        .map(|g| {
            let name = names
                .get(&g.full_path)
                .map_or(g.name.as_str(), String::as_str);
            group_json(state, g, name)
        })
        .collect())
}

async fn one_json(state: &AppState, g: &namespaces::Model) -> ApiResult<Value> {
    Ok(groups_json(state, std::slice::from_ref(g))
        .await?
        .into_iter()
        .next()
        .unwrap_or(Value::Null))
}

/// `/groups` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/groups", get(list_groups).post(create_group))
        .route(
            "/groups/{id}",
            get(get_group).put(update_group).delete(delete_group),
        )
        .route("/groups/{id}/subgroups", get(list_subgroups))
}

async fn visible_group(
    state: &AppState,
    caller: Option<&Caller>,
    id: &str,
) -> ApiResult<(namespaces::Model, Option<Role>)> {
    let g = lookup::group(&state.db.read, id).await?;
    let role = lookup::group_role(&state.db.read, caller, &g).await?;
    if lookup::can_view(&g.visibility, caller, role) {
        Ok((g, role))
    } else {
        Err(ApiError::NotFound("Group"))
    }
}

/// `GET /groups`: `search`, `all_available`, `owned`, `min_access_level`, `top_level_only`.
async fn list_groups(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    MaybeCaller(caller): MaybeCaller,
    p: Params,
) -> ApiResult<Response> {
    require_read(caller.as_ref())?;
    let page = p.page()?;
    let viewer = viewer(caller.as_ref());
    let all = p
        .bool("all_available")?
        .unwrap_or(!matches!(viewer, Viewer::User(_)));
    let mut min_level = match p.int("min_access_level")? {
        Some(l) => Some(i32::try_from(l).unwrap_or(i32::MAX)),
        None if all => None,
        None => Some(0),
    };
    if p.bool("owned")? == Some(true) {
        min_level = Some(Role::Owner.level());
    }
    let q = GroupQuery {
        search: p.str("search")?,
        parent_id: None,
        top_level_only: p.bool("top_level_only")?.unwrap_or(false),
        min_level,
    };
    let (rows, total) = berth_db::namespaces::list_groups(
        &state.db.read,
        viewer,
        &q,
        page.offset(),
        page.per_page(),
    )
    .await?;
    let items = groups_json(&state, &rows).await?;
    Ok(paged(&state, &uri, page, total, items))
}

/// `GET /groups/:id/subgroups`.
async fn list_subgroups(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    require_read(caller.as_ref())?;
    let page = p.page()?;
    let (g, _) = visible_group(&state, caller.as_ref(), &id).await?;
    let q = GroupQuery {
        search: p.str("search")?,
        parent_id: Some(g.id),
        ..GroupQuery::default()
    };
    let (rows, total) = berth_db::namespaces::list_groups(
        &state.db.read,
        viewer(caller.as_ref()),
        &q,
        page.offset(),
        page.per_page(),
    )
    .await?;
    let items = groups_json(&state, &rows).await?;
    Ok(paged(&state, &uri, page, total, items))
}

/// `GET /groups/:id`.
async fn get_group(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(caller.as_ref())?;
    let (g, role) = visible_group(&state, caller.as_ref(), &id).await?;
    let mut v = one_json(&state, &g).await?;
    storage::add_root_statistics(&state, caller.as_ref(), role, &g, &mut v).await?;
    Ok(Json(v))
}

/// `POST /groups`: `name`, `path`, `parent_id`, `visibility` (default private).
async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require_write()?;
    let name = p.required("name")?;
    let path = p.str("path")?.unwrap_or_else(|| slug(&name));
    if !valid_path(&path) {
        return Err(ApiError::BadRequest(
            "path can contain only lowercase letters, digits, '_', '-' and '.', and must start and end with a letter or digit".into(),
        ));
    }
    let vis = visibility(&p, Visibility::Private)?;
    let parent = match p.str("parent_id")? {
        // A top-level group lies outside every bot's home (a subgroup's parent is
        // checked through the caller's role there, which already applies the rule).
        None if !authz::bot_reaches(caller.user(), None, &[]) => {
            return Err(ApiError::Forbidden);
        }
        None => None,
        Some(pid) => {
            let (parent, role) = visible_group(&state, Some(&caller), &pid).await?;
            if role < Some(Role::Maintainer) {
                return Err(ApiError::Forbidden);
            }
            if rank(vis.as_str()) > rank(&parent.visibility) {
                return Err(ApiError::BadRequest(format!(
                    "visibility_level {vis} is not allowed since the parent group has a {} visibility",
                    parent.visibility
                )));
            }
            Some(parent)
        }
    };
    let full_path = parent
        .as_ref()
        .map_or(path.clone(), |p| format!("{}/{path}", p.full_path));
    let txn = state.db.begin_write().await?;
    if berth_db::namespaces::path_taken(&txn, &full_path).await? {
        return Err(ApiError::BadRequest(
            "Failed to save group {:path=>[\"has already been taken\"]}".into(),
        ));
    }
    let created = berth_db::namespaces::create_group(
        &txn,
        NewGroup {
            parent: parent.as_ref(),
            path: &path,
            name: &name,
            visibility: vis.as_str(),
        },
    )
    .await;
    let g = match created {
        Ok(g) => g,
        Err(e) if berth_db::is_unique_violation(&e) => {
            return Err(ApiError::BadRequest(
                "Failed to save group {:path=>[\"has already been taken\"]}".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    berth_db::members::add(
        &txn,
        Source::Namespace(g.id),
        caller.user().id,
        Role::Owner.level(),
        None,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(group.id = g.id, group.path = %g.full_path, "created group");
    Ok((StatusCode::CREATED, Json(one_json(&state, &g).await?)).into_response())
}

/// `PUT /groups/:id` (Owner): `name`, `visibility`; `registry_storage_limit` (bytes, null
/// to clear; admins only, root groups only: limits of subgroups would not be enforced). The
/// path cannot change (repository names hang off it).
async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.require_write()?;
    let g = lookup::group_with_role(&state.db.read, &caller, &id, Role::Owner).await?;
    if p.str("path")?.is_some_and(|path| path != g.path) {
        return Err(ApiError::BadRequest(
            "path cannot be changed in Berth".into(),
        ));
    }
    let vis = match p.str("visibility")? {
        None => None,
        Some(_) => Some(visibility(&p, Visibility::Private)?),
    };
    let limit = storage::limit_change(&caller, &p)?;
    if limit.is_some() && g.parent_id.is_some() {
        return Err(ApiError::BadRequest(
            "registry_storage_limit can only be set on a top-level group".into(),
        ));
    }
    let txn = state.db.begin_write().await?;
    if let Some(v) = vis {
        if let Some(parent) = g.parent_id {
            let parent = berth_db::namespaces::by_id(&txn, parent).await?;
            if parent.is_some_and(|p| rank(v.as_str()) > rank(&p.visibility)) {
                return Err(ApiError::BadRequest(
                    "visibility_level is not allowed since the parent group has a lower visibility"
                        .into(),
                ));
            }
        }
        let children = berth_db::namespaces::child_visibilities(&txn, g.id).await?;
        if children.iter().any(|c| rank(c) > rank(v.as_str())) {
            return Err(ApiError::BadRequest(
                "visibility_level is not allowed since there are sub-groups or projects with higher visibility".into(),
            ));
        }
    }
    let mut g = berth_db::namespaces::update_group(
        &txn,
        g,
        p.str("name")?,
        vis.map(|v| v.as_str().to_owned()),
    )
    .await?;
    if let Some(bytes) = limit {
        berth_db::usage::set_namespace_limit(&txn, g.id, bytes).await?;
        g.registry_storage_limit = bytes;
        tracing::info!(group.id = g.id, limit_bytes = ?bytes, "set registry storage limit");
    }
    txn.commit().await?;
    let mut v = one_json(&state, &g).await?;
    storage::add_root_statistics(&state, Some(&caller), Some(Role::Owner), &g, &mut v).await?;
    Ok(Json(v))
}

/// `DELETE /groups/:id` (Owner): only an empty group; 202.
async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require_write()?;
    let g = lookup::group_with_role(&state.db.read, &caller, &id, Role::Owner).await?;
    let txn = state.db.begin_write().await?;
    let (subgroups, projects) = berth_db::namespaces::children(&txn, g.id).await?;
    if subgroups + projects > 0 {
        return Err(ApiError::BadRequest(format!(
            "Group {} still has {subgroups} subgroup(s) and {projects} project(s): delete them first",
            g.full_path
        )));
    }
    berth_db::project_admin::retire_bots(&txn, "group", g.id).await?;
    berth_db::namespaces::delete_group(&txn, g.id).await?;
    txn.commit().await?;
    tracing::info!(group.id = g.id, "deleted group");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message": "202 Accepted" })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_like_gitlab() {
        assert_eq!(slug("My Project"), "my-project");
        assert_eq!(slug("  Acme  Platform!! "), "acme-platform");
        assert_eq!(slug("api.v2"), "api.v2");
    }

    #[test]
    fn visibility_ranks() {
        assert!(rank("public") > rank("internal"));
        assert!(rank("internal") > rank("private"));
        assert_eq!(rank("bogus"), 0);
    }
}

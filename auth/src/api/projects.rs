//! `/projects`: create (in your own namespace, or in a group as Maintainer+), list what
//! you can see, get, update (Maintainer+: name, visibility, registry access, cleanup policy)
//! and delete (Owner).

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_core::access::{RegistryAccess, Role, Visibility};
use berth_core::cleanup_policy::{Policy, PolicyChanges, next_run_after_save};
use berth_db::entity::{container_expiration_policies, namespaces, projects};
use berth_db::members::Source;
use berth_db::project_admin::{NewProject, ProjectChanges, ProjectQuery};
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::caller::{Caller, MaybeCaller};
use super::error::{ApiError, ApiResult};
use super::groups::{full_names, rank, require_read, slug, viewer, visibility};
use super::lookup;
use super::params::{Params, opt_time, paged, time, valid_path};
use super::storage;
use crate::state::AppState;

/// The write key of the cleanup policy in `PUT /projects/:id`.
const POLICY_ATTRIBUTES: &str = "container_expiration_policy_attributes";

/// GitLab's `container_expiration_policy`: the stored policy or, without one, GitLab's
/// defaults; `next_run_at` only while enabled.
fn policy_json(stored: Option<&container_expiration_policies::Model>) -> Value {
    let (p, next) = stored.map_or((Policy::default(), None), |m| {
        (berth_db::expiration_policies::policy(m), m.next_run_at)
    });
    json!({
        "cadence": p.cadence,
        "enabled": p.enabled,
        "keep_n": p.keep_n,
        "older_than": p.older_than,
        "name_regex": p.name_regex,
        "name_regex_keep": p.name_regex_keep,
        "next_run_at": if p.enabled { opt_time(next) } else { Value::Null },
    })
}

fn project_json(
    state: &AppState,
    p: &projects::Model,
    ns: Option<&namespaces::Model>,
    ns_full_name: &str,
    policy: Option<&container_expiration_policies::Model>,
) -> Value {
    let registry_host = state.cfg.registry_host();
    let namespace = ns.map_or(Value::Null, |n| {
        json!({
            "id": n.id,
            "name": n.name,
            "path": n.path,
            "kind": n.kind,
            "full_path": n.full_path,
            "parent_id": n.parent_id,
        })
    });
    json!({
        "id": p.id,
        "name": p.name,
        "path": p.path,
        "path_with_namespace": p.full_path,
        "name_with_namespace": format!("{ns_full_name} / {}", p.name),
        "description": null,
        "namespace": namespace,
        "visibility": p.visibility,
        "container_registry_access_level": p.container_registry_access_level,
        "container_registry_enabled": p.container_registry_access_level != "disabled",
        "container_registry_image_prefix": format!("{registry_host}/{}", p.full_path),
        "container_expiration_policy": policy_json(policy),
        "registry_storage_limit": p.registry_storage_limit,
        "web_url": format!("{}/{}", state.cfg.auth_url.trim_end_matches('/'), p.full_path),
        "created_at": time(p.created_at),
        "last_activity_at": time(p.updated_at),
    })
}

fn namespace_path(p: &projects::Model) -> &str {
    p.full_path.rsplit_once('/').map_or("", |(ns, _)| ns)
}

/// Projects as GitLab shows them, with their namespaces and cleanup policies (three
/// queries for the lot).
pub async fn projects_json(state: &AppState, rows: &[projects::Model]) -> ApiResult<Vec<Value>> {
    let c = &state.db.read;
    let paths: Vec<String> = rows.iter().map(|p| namespace_path(p).to_owned()).collect();
    let names = full_names(c, paths.iter().map(String::as_str)).await?;
    let namespaces: HashMap<i64, namespaces::Model> =
        berth_db::namespaces::by_full_paths(c, paths.clone())
            .await?
            .into_iter()
            .map(|n| (n.id, n))
            .collect();
    let policies: HashMap<i64, container_expiration_policies::Model> =
        berth_db::expiration_policies::for_projects(c, rows.iter().map(|p| p.id))
            .await?
            .into_iter()
            .map(|m| (m.project_id, m))
            .collect();
    Ok(rows
        .iter()
        .map(|p| {
            let ns_path = namespace_path(p);
            let ns_name = names.get(ns_path).map_or(ns_path, String::as_str);
            project_json(
                state,
                p,
                namespaces.get(&p.namespace_id),
                ns_name,
                policies.get(&p.id),
            )
        })
        .collect())
}

/// One project as JSON.
pub async fn one_project_json(state: &AppState, p: &projects::Model) -> ApiResult<Value> {
    Ok(projects_json(state, std::slice::from_ref(p))
        .await?
        .into_iter()
        .next()
        .unwrap_or(Value::Null))
}

/// `/projects` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_projects).post(create_project))
        .route(
            "/projects/{id}",
            get(get_project).put(update_project).delete(delete_project),
        )
        .route("/groups/{id}/projects", get(list_group_projects))
}

fn registry_access(p: &Params) -> ApiResult<Option<RegistryAccess>> {
    if let Some(level) = p.str("container_registry_access_level")? {
        return level.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(
                "container_registry_access_level does not have a valid value".into(),
            )
        });
    }
    Ok(p.bool("container_registry_enabled")?.map(|on| {
        if on {
            RegistryAccess::Enabled
        } else {
            RegistryAccess::Disabled
        }
    }))
}

/// `container_expiration_policy_attributes` (a JSON object or `…[field]=` form keys) as a
/// partial update: absent fields stay, null or empty clears the nullable ones;
/// `name_regex_delete` is `name_regex`'s alias.
fn policy_changes(p: &Params) -> ApiResult<Option<PolicyChanges>> {
    let Some(a) = p.object(POLICY_ATTRIBUTES)? else {
        return Ok(None);
    };
    let invalid = |f: &str| ApiError::BadRequest(format!("{POLICY_ATTRIBUTES}[{f}] is invalid"));
    let text = |a: &Map<String, Value>, f: &str| -> ApiResult<Option<Option<String>>> {
        match a.get(f) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(Value::Number(n)) => Ok(Some(Some(n.to_string()))),
            Some(_) => Err(invalid(f)),
        }
    };
    let keep_n = match a.get("keep_n") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.is_empty() => Some(None),
        Some(Value::Number(n)) => Some(Some(n.as_i64().ok_or_else(|| invalid("keep_n"))?)),
        Some(Value::String(s)) => Some(Some(
            s.trim().parse::<i64>().map_err(|_| invalid("keep_n"))?,
        )),
        Some(_) => return Err(invalid("keep_n")),
    };
    let enabled = Params(a.clone())
        .bool("enabled")
        .map_err(|_| invalid("enabled"))?;
    let name_regex = match text(&a, "name_regex")? {
        Some(v) => Some(v),
        None => text(&a, "name_regex_delete")?,
    };
    Ok(Some(PolicyChanges {
        // A blank cadence fails validation ("can't be blank").
        cadence: text(&a, "cadence")?.map(Option::unwrap_or_default),
        enabled,
        // Out of i32's range is out of the allowed list too.
        keep_n: keep_n.map(|k| k.map(|n| i32::try_from(n).unwrap_or(-1))),
        older_than: text(&a, "older_than")?,
        name_regex,
        name_regex_keep: text(&a, "name_regex_keep")?,
    }))
}

/// A project may not be more visible than its group.
fn check_visibility(ns: &namespaces::Model, v: Visibility) -> ApiResult<()> {
    if ns.kind == "group" && rank(v.as_str()) > rank(&ns.visibility) {
        return Err(ApiError::BadRequest(format!(
            "visibility_level {v} is not allowed since the namespace has a {} visibility",
            ns.visibility
        )));
    }
    Ok(())
}

async fn list(
    state: &AppState,
    uri: &Uri,
    caller: Option<&Caller>,
    p: &Params,
    namespace_id: Option<i64>,
) -> ApiResult<Response> {
    require_read(caller)?;
    let page = p.page()?;
    let mut min_level = p
        .int("min_access_level")?
        .map(|l| i32::try_from(l).unwrap_or(i32::MAX));
    if min_level.is_none() && p.bool("membership")? == Some(true) {
        min_level = Some(0);
    }
    let vis = match p.str("visibility")? {
        None => None,
        Some(_) => Some(visibility(p, Visibility::Private)?.as_str().to_owned()),
    };
    let q = ProjectQuery {
        search: p.str("search")?,
        visibility: vis,
        min_level,
        owned: p.bool("owned")? == Some(true),
        namespace_id,
    };
    let (rows, total) = berth_db::project_admin::list(
        &state.db.read,
        viewer(caller),
        &q,
        page.offset(),
        page.per_page(),
    )
    .await?;
    let items = projects_json(state, &rows).await?;
    Ok(paged(state, uri, page, total, items))
}

/// `GET /projects`: `search`, `membership`, `owned`, `visibility`, `min_access_level`.
async fn list_projects(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    MaybeCaller(caller): MaybeCaller,
    p: Params,
) -> ApiResult<Response> {
    list(&state, &uri, caller.as_ref(), &p, None).await
}

/// `GET /groups/:id/projects`: the group's own projects the caller can see.
async fn list_group_projects(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let g = lookup::group(&state.db.read, &id).await?;
    let role = lookup::group_role(&state.db.read, caller.as_ref(), &g).await?;
    if !lookup::can_view(&g.visibility, caller.as_ref(), role) {
        return Err(ApiError::NotFound("Group"));
    }
    list(&state, &uri, caller.as_ref(), &p, Some(g.id)).await
}

/// `GET /projects/:id`; with `statistics=true`, GitLab's `statistics` (Berth fills
/// `container_registry_size`, the project's deduplicated registry usage) for admins and
/// Reporter+, as GitLab shows it.
async fn get_project(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    require_read(caller.as_ref())?;
    let (ctx, role) = lookup::visible_project(&state.db.read, caller.as_ref(), &id).await?;
    let mut v = one_project_json(&state, &ctx.project).await?;
    if p.bool("statistics")? == Some(true) {
        storage::add_project_statistics(&state, caller.as_ref(), role, &ctx.project, &mut v)
            .await?;
    }
    Ok(Json(v))
}

/// The namespace a new project goes in, checking the caller may create there.
async fn target_namespace(
    state: &AppState,
    caller: &Caller,
    p: &Params,
) -> ApiResult<namespaces::Model> {
    let c = &state.db.read;
    let raw = match p.str("namespace_id")? {
        Some(raw) => Some(raw),
        None => p.str("namespace")?,
    };
    let Some(raw) = raw else {
        return berth_db::namespaces::personal(c, caller.user().id)
            .await?
            .ok_or_else(|| ApiError::BadRequest("namespace_id is missing".into()));
    };
    let ns = match raw.parse::<i64>() {
        Ok(id) => berth_db::namespaces::by_id(c, id).await?,
        Err(_) => berth_db::namespaces::by_full_path(c, raw.trim_matches('/')).await?,
    }
    .ok_or(ApiError::NotFound("Namespace"))?;
    if ns.kind == "user" {
        if caller.is_admin() || ns.owner_user_id == Some(caller.user().id) {
            return Ok(ns);
        }
        return Err(ApiError::Forbidden);
    }
    let role = lookup::group_role(c, Some(caller), &ns).await?;
    if !lookup::can_view(&ns.visibility, Some(caller), role) {
        return Err(ApiError::NotFound("Namespace"));
    }
    if role < Some(Role::Maintainer) {
        return Err(ApiError::Forbidden);
    }
    Ok(ns)
}

/// `POST /projects`: `name` and/or `path`, `namespace_id`, `visibility`,
/// `container_registry_access_level`.
async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require_write()?;
    let (name, path) = match (p.str("name")?, p.str("path")?) {
        (None, None) => {
            return Err(ApiError::BadRequest(
                "name, path are missing, at least one parameter must be provided".into(),
            ));
        }
        (Some(n), None) => (n.clone(), slug(&n)),
        (None, Some(path)) => (path.clone(), path),
        (Some(n), Some(path)) => (n, path),
    };
    if !valid_path(&path) {
        return Err(ApiError::BadRequest(
            "path can contain only lowercase letters, digits, '_', '-' and '.', and must start and end with a letter or digit".into(),
        ));
    }
    let vis = visibility(&p, Visibility::Private)?;
    let registry = registry_access(&p)?.unwrap_or(RegistryAccess::Enabled);
    let ns = target_namespace(&state, &caller, &p).await?;
    check_visibility(&ns, vis)?;
    let full_path = format!("{}/{path}", ns.full_path);
    let taken = || ApiError::BadRequest("path has already been taken".into());
    let txn = state.db.begin_write().await?;
    if berth_db::namespaces::path_taken(&txn, &full_path).await?
        || berth_db::project_admin::repositories_remain(&txn, &full_path).await?
    {
        return Err(taken());
    }
    let created = berth_db::project_admin::create(
        &txn,
        NewProject {
            namespace: &ns,
            path: &path,
            name: &name,
            visibility: vis.as_str(),
            registry_access: registry.as_str(),
        },
    )
    .await;
    let project = match created {
        Ok(p) => p,
        Err(e) if berth_db::is_unique_violation(&e) => return Err(taken()),
        Err(e) => return Err(e.into()),
    };
    // GitLab: the owner of a personal namespace owns its projects; in a group the
    // creator becomes a Maintainer (group Owners keep Owner through the group).
    let (member, role) = match ns.owner_user_id {
        Some(owner) if ns.kind == "user" => (owner, Role::Owner),
        _ => (caller.user().id, Role::Maintainer),
    };
    berth_db::members::add(
        &txn,
        Source::Project(project.id),
        member,
        role.level(),
        None,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(project.id = project.id, project.path = %project.full_path, "created project");
    Ok((
        StatusCode::CREATED,
        Json(one_project_json(&state, &project).await?),
    )
        .into_response())
}

/// `PUT /projects/:id` (Maintainer+): `name`, `visibility`, `container_registry_access_level`
/// (or the older `container_registry_enabled`), `container_expiration_policy_attributes`
/// (merged into the stored or default policy; `next_run_at` is set from now when the policy
/// is turned on or its cadence changes, cleared when it is turned off),
/// `registry_storage_limit` (bytes, null to clear; admins only). All or nothing.
async fn update_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.require_write()?;
    let ctx = lookup::project_with_role(&state.db.read, &caller, &id, Role::Maintainer).await?;
    let vis = match p.str("visibility")? {
        None => None,
        Some(_) => Some(visibility(&p, Visibility::Private)?),
    };
    if let (Some(v), Some(ns)) = (vis, ctx.chain.last()) {
        check_visibility(ns, v)?;
    }
    if p.str("path")?.is_some_and(|path| path != ctx.project.path) {
        return Err(ApiError::BadRequest(
            "path cannot be changed in Berth".into(),
        ));
    }
    let changes = ProjectChanges {
        name: p.str("name")?,
        visibility: vis.map(|v| v.as_str().to_owned()),
        registry_access: registry_access(&p)?.map(|r| r.as_str().to_owned()),
    };
    let policy = policy_changes(&p)?;
    let limit = storage::limit_change(&caller, &p)?;
    let txn = state.db.begin_write().await?;
    if let Some(policy) = policy {
        // Read, merge and write under the project's row lock, so concurrent partial
        // updates do not lose each other's fields.
        let pid = ctx.project.id;
        berth_db::tag_rules::lock_project(&txn, pid).await?;
        let stored = berth_db::expiration_policies::get(&txn, pid).await?;
        let (before, before_next) = stored.as_ref().map_or((Policy::default(), None), |m| {
            (berth_db::expiration_policies::policy(m), m.next_run_at)
        });
        let after = before.merged(&policy);
        after
            .validate()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let next = next_run_after_save(&before, before_next, &after, Utc::now());
        berth_db::expiration_policies::upsert(&txn, pid, &after, next).await?;
    }
    let mut project = berth_db::project_admin::update(&txn, ctx.project, changes).await?;
    if let Some(bytes) = limit {
        berth_db::usage::set_project_limit(&txn, project.id, bytes).await?;
        project.registry_storage_limit = bytes;
        tracing::info!(project.id = project.id, limit_bytes = ?bytes, "set registry storage limit");
    }
    txn.commit().await?;
    tracing::info!(project.id = project.id, "updated project");
    Ok(Json(one_project_json(&state, &project).await?))
}

/// `DELETE /projects/:id` (Owner or admin): 202.
async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require_write()?;
    let ctx = lookup::project_with_role(&state.db.read, &caller, &id, Role::Owner).await?;
    // Its repositories are deleted asynchronously (tags, manifests, then GC), as GitLab does.
    let scheduled = crate::deletions::delete_project(&state.db, &ctx.project).await?;
    tracing::info!(project.id = ctx.project.id, project.path = %ctx.project.full_path, repositories_scheduled = scheduled, "deleted project");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message": "202 Accepted" })),
    )
        .into_response())
}

//! The registry's repositories as GitLab lists them: per project, per group (with
//! its subgroups) and one by id. Viewing a registry is the same right as pulling from it
//! (anonymous on public+enabled, signed-in on internal+enabled, else Reporter+). Tags live
//! in [`super::registry_tags`]; deletions in [`super::registry_deletions`].

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use berth_core::access::Role;
use berth_db::entity::{projects, repositories};
use berth_db::registry_read as q;
use chrono::Utc;
use serde_json::{Value, json};

use super::caller::{Caller, MaybeCaller};
use super::error::{ApiError, ApiResult};
use super::groups::require_read;
use super::lookup;
use super::params::{Params, opt_time, paged, time};
use super::registry_tags;
use crate::authz::{self, ProjectCtx};
use crate::identity::Credential;
use crate::state::AppState;

/// Registry routes: repositories here, tags in [`registry_tags`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{id}/registry/repositories",
            get(list_project_repositories),
        )
        .route(
            "/groups/{id}/registry/repositories",
            get(list_group_repositories),
        )
        .route("/registry/repositories/{id}", get(get_repository))
        .merge(registry_tags::routes())
}

fn credential(caller: Option<&Caller>) -> Credential {
    caller.map_or(Credential::Anonymous, |c| Credential::User(c.cred.clone()))
}

/// What an API endpoint needs in a project's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryNeed {
    /// See its repositories, tags and what the API says about them: the registry's `pull`.
    View,
    /// View, and at least this role: the API's own operations (previewing the cleanup
    /// policy: Reporter; deleting one tag: Developer; deleting a repository or tags in
    /// bulk: Maintainer).
    ViewWithRole(Role),
    /// The registry's `delete` action itself (deleting a manifest): Maintainer+ with a
    /// token carrying `api`, exactly as `/jwt/auth` grants `delete`.
    Delete,
}

/// Does `caller` have `need` in the registry of `ctx`'s project? The one access check of
/// every API endpoint that reads or changes registry content, so the API never shows or
/// does more than the registry would for the same credential: it starts from what
/// `/jwt/auth` would grant ([`authz::registry_abilities`]: the visibility matrix, roles,
/// token scopes, bots confined to their home, and a `disabled` registry refusing everyone,
/// admins included).
pub async fn may(
    state: &AppState,
    caller: Option<&Caller>,
    ctx: &ProjectCtx,
    need: RegistryNeed,
) -> ApiResult<bool> {
    let c = &state.db.read;
    let abilities = authz::registry_abilities(c, &credential(caller), ctx, Utc::now()).await?;
    Ok(match need {
        RegistryNeed::View => abilities.pull,
        RegistryNeed::ViewWithRole(min) => {
            abilities.pull && lookup::project_role(c, caller, ctx).await? >= Some(min)
        }
        RegistryNeed::Delete => abilities.delete,
    })
}

/// The project `id` names if the caller has `need` in its registry ([`may`]): 404 when the
/// project is hidden from them, 403 when they see the project but not that (GitLab: the
/// ability is prevented, `403 Forbidden`), including when its registry is disabled.
pub async fn registry_project_for(
    state: &AppState,
    caller: Option<&Caller>,
    id: &str,
    need: RegistryNeed,
) -> ApiResult<ProjectCtx> {
    require_read(caller)?;
    let (ctx, _) = lookup::visible_project(&state.db.read, caller, id).await?;
    if may(state, caller, &ctx, need).await? {
        Ok(ctx)
    } else {
        Err(ApiError::Forbidden)
    }
}

/// The project `id` names if the caller may view its registry ([`RegistryNeed::View`]).
pub async fn registry_project(
    state: &AppState,
    caller: Option<&Caller>,
    id: &str,
) -> ApiResult<ProjectCtx> {
    registry_project_for(state, caller, id, RegistryNeed::View).await
}

/// `repository`'s name inside its project (`""` for the project's own path).
fn image_name<'a>(project: &projects::Model, repository: &'a repositories::Model) -> &'a str {
    repository
        .name
        .strip_prefix(project.full_path.as_str())
        .map_or(repository.name.as_str(), |rest| {
            rest.trim_start_matches('/')
        })
}

/// A tag as GitLab lists it: `name`, `path` (`repo:tag`), `location` (`host/repo:tag`).
pub fn tag_json(state: &AppState, repository: &str, tag: &str) -> Value {
    json!({
        "name": tag,
        "path": format!("{repository}:{tag}"),
        "location": format!("{}/{repository}:{tag}", state.cfg.registry_host()),
    })
}

/// Which optional fields a repository listing adds.
#[derive(Debug, Clone, Copy, Default)]
struct Extras {
    tags: bool,
    tags_count: bool,
    size: bool,
}

impl Extras {
    fn parse(p: &Params, size: bool) -> ApiResult<Self> {
        Ok(Extras {
            tags: p.bool("tags")?.unwrap_or(false),
            tags_count: p.bool("tags_count")?.unwrap_or(false),
            size: size && p.bool("size")?.unwrap_or(false),
        })
    }
}

/// Repositories (each with its owning project) as GitLab shows them.
async fn repositories_json(
    state: &AppState,
    rows: &[(&projects::Model, &repositories::Model)],
    extras: Extras,
) -> ApiResult<Vec<Value>> {
    let c = &state.db.read;
    let ids: Vec<i64> = rows.iter().map(|(_, r)| r.id).collect();
    let counts = if extras.tags_count {
        q::tag_counts(c, &ids).await?
    } else {
        HashMap::new()
    };
    let mut names = if extras.tags {
        q::tag_names(c, &ids).await?
    } else {
        HashMap::new()
    };
    // GitLab's `status`: a scheduled, running or failed repository deletion, else null.
    let statuses = berth_db::background_jobs::repository_statuses(c, &ids).await?;
    // GitLab's cleanup-policy state (m0009); no row: never run.
    let cleanups = berth_db::repository_cleanups::for_repositories(c, &ids).await?;
    let host = state.cfg.registry_host();
    let mut out = Vec::with_capacity(rows.len());
    for (project, r) in rows {
        let mut v = json!({
            "id": r.id,
            "name": image_name(project, r),
            "path": r.name,
            "project_id": project.id,
            "location": format!("{host}/{}", r.name),
            "created_at": time(r.created_at),
            // Usage facts: pull counts are written by the registries in batches, so they
            // lag pulls by up to BERTH_USAGE_FLUSH_INTERVAL.
            "pull_count": r.pull_count,
            "last_pulled_at": opt_time(r.last_pulled_at),
            "last_pushed_at": opt_time(r.last_pushed_at),
            "status": statuses.get(&r.id).map(|s| s.as_str()),
        });
        // Beyond GitLab: why the deletion failed, while `status` is `delete_failed`.
        if let Some(berth_db::background_jobs::DeletionStatus::Failed(reason)) = statuses.get(&r.id)
        {
            v["delete_error"] = json!(reason);
        }
        let cleanup = cleanups.get(&r.id);
        let started = cleanup.and_then(|s| s.expiration_policy_started_at);
        v["cleanup_policy_started_at"] = opt_time(started);
        v["expiration_policy_started_at"] = opt_time(started);
        v["expiration_policy_cleanup_status"] = json!(
            cleanup.map_or(berth_db::repository_cleanups::UNSCHEDULED, |s| s
                .expiration_policy_cleanup_status
                .as_str())
        );
        v["expiration_policy_completed_at"] =
            opt_time(cleanup.and_then(|s| s.expiration_policy_completed_at));
        v["last_cleanup_deleted_tags_count"] =
            json!(cleanup.and_then(|s| s.last_cleanup_deleted_tags_count));
        if extras.tags_count {
            v["tags_count"] = json!(counts.get(&r.id).copied().unwrap_or(0));
        }
        if extras.tags {
            let tags: Vec<Value> = names
                .remove(&r.id)
                .unwrap_or_default()
                .iter()
                .map(|t| tag_json(state, &r.name, t))
                .collect();
            v["tags"] = Value::Array(tags);
        }
        if extras.size {
            v["size"] = json!(q::repository_size(c, r.id).await?);
        }
        out.push(v);
    }
    Ok(out)
}

/// The repositories of `project` (those under its path not owned by a project nested
/// below it).
pub(crate) async fn project_repositories(
    state: &AppState,
    project: &projects::Model,
) -> ApiResult<Vec<repositories::Model>> {
    let c = &state.db.read;
    let nested = q::projects_under(c, &project.full_path).await?;
    let mut paths = vec![project.full_path.as_str()];
    paths.extend(nested.iter().map(|p| p.full_path.as_str()));
    Ok(q::repositories_under(c, &project.full_path)
        .await?
        .into_iter()
        .filter(|r| q::owner_of(&r.name, &paths) == Some(0))
        .collect())
}

/// The repository `repository_id` if it belongs to `project`, else 404.
pub async fn project_repository(
    state: &AppState,
    project: &projects::Model,
    repository_id: &str,
) -> ApiResult<repositories::Model> {
    let c = &state.db.read;
    let id = repository_id
        .parse::<i64>()
        .map_err(|_| ApiError::NotFound("Repository"))?;
    let r = q::repository(c, id)
        .await?
        .ok_or(ApiError::NotFound("Repository"))?;
    let owner = berth_db::access::project_for_repository(c, &r.name).await?;
    if owner.is_some_and(|o| o.id == project.id) {
        Ok(r)
    } else {
        Err(ApiError::NotFound("Repository"))
    }
}

/// `GET /projects/:id/registry/repositories` (`tags`, `tags_count`).
async fn list_project_repositories(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let ctx = registry_project(&state, caller.as_ref(), &id).await?;
    let extras = Extras::parse(&p, false)?;
    let page = p.page()?;
    let repos = project_repositories(&state, &ctx.project).await?;
    let rows: Vec<_> = repos.iter().map(|r| (&ctx.project, r)).collect();
    let total = rows.len();
    let shown = page_of(&rows, page.offset(), page.per_page());
    let items = repositories_json(&state, shown, extras).await?;
    Ok(paged(&state, &uri, page, total as u64, items))
}

fn page_of<T>(all: &[T], offset: u64, per_page: u64) -> &[T] {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
    let end = start
        .saturating_add(usize::try_from(per_page).unwrap_or(usize::MAX))
        .min(all.len());
    &all[start..end]
}

/// `GET /groups/:id/registry/repositories`: every repository of the group's projects and its
/// subgroups' whose registry the caller may view.
async fn list_group_repositories(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    require_read(caller.as_ref())?;
    let c = &state.db.read;
    let g = lookup::group(c, &id).await?;
    let role = lookup::group_role(c, caller.as_ref(), &g).await?;
    if !lookup::can_view(&g.visibility, caller.as_ref(), role) {
        return Err(ApiError::NotFound("Group"));
    }
    let extras = Extras::parse(&p, false)?;
    let page = p.page()?;
    let projects = q::projects_under(c, &g.full_path).await?;
    let paths: Vec<&str> = projects.iter().map(|p| p.full_path.as_str()).collect();
    let repos = q::repositories_under(c, &g.full_path).await?;
    let mut viewable: HashMap<usize, bool> = HashMap::new();
    let mut rows = Vec::new();
    for r in &repos {
        let Some(owner) = q::owner_of(&r.name, &paths) else {
            continue;
        };
        let ok = match viewable.get(&owner) {
            Some(ok) => *ok,
            None => {
                let ctx = ProjectCtx::load(c, projects[owner].clone()).await?;
                let ok = may(&state, caller.as_ref(), &ctx, RegistryNeed::View).await?;
                viewable.insert(owner, ok);
                ok
            }
        };
        if ok {
            rows.push((&projects[owner], r));
        }
    }
    let total = rows.len();
    let shown = page_of(&rows, page.offset(), page.per_page());
    let items = repositories_json(&state, shown, extras).await?;
    Ok(paged(&state, &uri, page, total as u64, items))
}

/// `GET /registry/repositories/:id` (`tags`, `tags_count`, `size`).
async fn get_repository(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    require_read(caller.as_ref())?;
    let c = &state.db.read;
    let not_found = || ApiError::NotFound("Repository");
    let id = id.parse::<i64>().map_err(|_| not_found())?;
    let r = q::repository(c, id).await?.ok_or_else(not_found)?;
    let ctx = ProjectCtx::for_repository(c, &r.name)
        .await?
        .ok_or_else(not_found)?;
    let role = lookup::project_role(c, caller.as_ref(), &ctx).await?;
    if !lookup::can_view(&ctx.project.visibility, caller.as_ref(), role) {
        return Err(not_found());
    }
    if !may(&state, caller.as_ref(), &ctx, RegistryNeed::View).await? {
        return Err(ApiError::Forbidden);
    }
    let extras = Extras::parse(&p, true)?;
    let mut items = repositories_json(&state, &[(&ctx.project, &r)], extras).await?;
    Ok(Json(items.pop().unwrap_or(Value::Null)))
}

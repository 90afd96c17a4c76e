//! `:id` in API paths: a numeric id or the URL-encoded full path (`acme%2Fplatform`), for
//! projects and groups, plus who may see them.

use berth_core::access::{Role, Visibility};
use berth_db::entity::{namespaces, projects};
use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use crate::authz::{self, ProjectCtx};

/// The project `id` names (number or full path), or 404.
pub async fn project(c: &impl ConnectionTrait, id: &str) -> ApiResult<ProjectCtx> {
    let found = match id.parse::<i64>() {
        Ok(n) => projects::Entity::find_by_id(n).one(c).await?,
        Err(_) => {
            projects::Entity::find()
                .filter(projects::Column::FullPath.eq(id.trim_matches('/')))
                .one(c)
                .await?
        }
    };
    let project = found.ok_or(ApiError::NotFound("Project"))?;
    Ok(ProjectCtx::load(c, project).await?)
}

/// The group `id` names (number or full path), or 404. Personal namespaces are not groups.
pub async fn group(c: &impl ConnectionTrait, id: &str) -> ApiResult<namespaces::Model> {
    let found = match id.parse::<i64>() {
        Ok(n) => namespaces::Entity::find_by_id(n).one(c).await?,
        Err(_) => {
            namespaces::Entity::find()
                .filter(namespaces::Column::FullPath.eq(id.trim_matches('/')))
                .one(c)
                .await?
        }
    };
    found
        .filter(|n| n.kind == "group")
        .ok_or(ApiError::NotFound("Group"))
}

/// The caller's effective role in a project (admins count as Owner).
pub async fn project_role(
    c: &impl ConnectionTrait,
    caller: Option<&Caller>,
    ctx: &ProjectCtx,
) -> ApiResult<Option<Role>> {
    let Some(caller) = caller else {
        return Ok(None);
    };
    if caller.is_admin() {
        return Ok(Some(Role::Owner));
    }
    Ok(authz::project_role(c, caller.user(), ctx, Utc::now()).await?)
}

/// The caller's effective role in a group, inherited from its ancestors (admins: Owner;
/// a bot outside its home: none, [`authz::bot_reaches`]).
pub async fn group_role(
    c: &impl ConnectionTrait,
    caller: Option<&Caller>,
    group: &namespaces::Model,
) -> ApiResult<Option<Role>> {
    let Some(caller) = caller else {
        return Ok(None);
    };
    if caller.is_admin() {
        return Ok(Some(Role::Owner));
    }
    let chain: Vec<i64> = berth_db::access::namespace_chain(c, &group.full_path)
        .await?
        .iter()
        .map(|n| n.id)
        .collect();
    if !authz::bot_reaches(caller.user(), None, &chain) {
        return Ok(None);
    }
    let level =
        berth_db::access::effective_namespace_level(c, caller.user().id, &chain, Utc::now())
            .await?;
    Ok(level.and_then(Role::from_level))
}

/// May this caller see a project or group of this visibility with this role? Public: anyone;
/// internal: any signed-in user; private: members (any role) and admins.
pub fn can_view(visibility: &str, caller: Option<&Caller>, role: Option<Role>) -> bool {
    match visibility.parse().unwrap_or(Visibility::Private) {
        Visibility::Public => true,
        Visibility::Internal => caller.is_some(),
        Visibility::Private => role.is_some(),
    }
}

/// The project if the caller may see it, else 404 (GitLab hides what you cannot see), and
/// the caller's role in it.
pub async fn visible_project(
    c: &impl ConnectionTrait,
    caller: Option<&Caller>,
    id: &str,
) -> ApiResult<(ProjectCtx, Option<Role>)> {
    let ctx = project(c, id).await?;
    let role = project_role(c, caller, &ctx).await?;
    if can_view(&ctx.project.visibility, caller, role) {
        Ok((ctx, role))
    } else {
        Err(ApiError::NotFound("Project"))
    }
}

/// Require at least `min` in a project the caller can see: 404 when they cannot see it,
/// 403 when they can but their role is too low.
pub async fn project_with_role(
    c: &impl ConnectionTrait,
    caller: &Caller,
    id: &str,
    min: Role,
) -> ApiResult<ProjectCtx> {
    let (ctx, role) = visible_project(c, Some(caller), id).await?;
    if role.is_some_and(|r| r >= min) {
        Ok(ctx)
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Require at least `min` in a group the caller can see (same 404/403 rule).
pub async fn group_with_role(
    c: &impl ConnectionTrait,
    caller: &Caller,
    id: &str,
    min: Role,
) -> ApiResult<namespaces::Model> {
    let g = group(c, id).await?;
    let role = group_role(c, Some(caller), &g).await?;
    if !can_view(&g.visibility, Some(caller), role) {
        return Err(ApiError::NotFound("Group"));
    }
    if role.is_some_and(|r| r >= min) {
        Ok(g)
    } else {
        Err(ApiError::Forbidden)
    }
}

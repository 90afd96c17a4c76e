//! `/projects/:id/members` and `/groups/:id/members`: direct and inherited members, and
//! Maintainers managing them (only Owners grant, change or remove Owner). Also [`Scope`]:
//! "a project or group the caller can see, and their role there", shared by the other
//! project-or-group endpoints.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_core::access::Role;
use berth_db::entity::{members, users};
use berth_db::members::Source;
use chrono::Utc;
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::lookup;
use super::params::{Params, opt_date, paged_vec, time};
use super::users::user_basic;
use crate::authz;
use crate::state::AppState;

/// A project or group the caller can see, and their role in it.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `project` or `group`.
    pub kind: &'static str,
    /// Its id.
    pub id: i64,
    /// Ids of the namespaces it inherits memberships from (the group itself included).
    pub chain: Vec<i64>,
    /// The caller's effective role (admins: Owner).
    pub role: Option<Role>,
}

impl Scope {
    /// Resolve `id` (number or full path) of `kind`: 404 when the caller cannot see it.
    pub async fn resolve(
        state: &AppState,
        caller: &Caller,
        kind: &'static str,
        id: &str,
    ) -> ApiResult<Scope> {
        let c = &state.db.read;
        if kind == "project" {
            let (ctx, role) = lookup::visible_project(c, Some(caller), id).await?;
            return Ok(Scope {
                kind,
                id: ctx.project.id,
                chain: ctx.chain_ids(),
                role,
            });
        }
        let g = lookup::group(c, id).await?;
        let role = lookup::group_role(c, Some(caller), &g).await?;
        if !lookup::can_view(&g.visibility, Some(caller), role) {
            return Err(ApiError::NotFound("Group"));
        }
        let chain = berth_db::access::namespace_chain(c, &g.full_path)
            .await?
            .iter()
            .map(|n| n.id)
            .collect();
        Ok(Scope {
            kind,
            id: g.id,
            chain,
            role,
        })
    }

    /// Resolve and require at least `min` (403 otherwise).
    pub async fn with_role(
        state: &AppState,
        caller: &Caller,
        kind: &'static str,
        id: &str,
        min: Role,
    ) -> ApiResult<Scope> {
        let s = Self::resolve(state, caller, kind, id).await?;
        if s.role.is_some_and(|r| r >= min) {
            Ok(s)
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Does `user` reach this project or group ([`authz::bot_reaches`])?
    pub fn reaches(&self, user: &users::Model) -> bool {
        let project = (self.kind == "project").then_some(self.id);
        authz::bot_reaches(user, project, &self.chain)
    }

    /// The membership source.
    pub fn source(&self) -> Source {
        if self.kind == "project" {
            Source::Project(self.id)
        } else {
            Source::Namespace(self.id)
        }
    }
}

/// A member as GitLab shows it.
pub fn member_json(state: &AppState, m: &members::Model, u: &users::Model) -> Value {
    let mut v = user_basic(state, u);
    if let Value::Object(o) = &mut v {
        o.insert("access_level".into(), json!(m.access_level));
        o.insert("expires_at".into(), opt_date(m.expires_at));
        o.insert("created_at".into(), json!(time(m.created_at)));
        o.insert("membership_state".into(), json!("active"));
    }
    v
}

/// Member routes under `/projects/:id` and `/groups/:id`.
pub fn routes() -> Router<AppState> {
    let scoped = |kind: &'static str, base: &str| {
        Router::new()
            .route(
                base,
                get(move |s, u, c, p, q| list_members(s, u, c, p, q, kind, false))
                    .post(move |s, c, p, q| add_member(s, c, p, q, kind)),
            )
            .route(
                &format!("{base}/all"),
                get(move |s, u, c, p, q| list_members(s, u, c, p, q, kind, true)),
            )
            .route(
                &format!("{base}/all/{{user_id}}"),
                get(move |s, c, p| get_member(s, c, p, kind, true)),
            )
            .route(
                &format!("{base}/{{user_id}}"),
                get(move |s, c, p| get_member(s, c, p, kind, false))
                    .put(move |s, c, p, q| update_member(s, c, p, q, kind))
                    .delete(move |s, c, p| remove_member(s, c, p, kind)),
            )
    };
    Router::new()
        .merge(scoped("project", "/projects/{id}/members"))
        .merge(scoped("group", "/groups/{id}/members"))
}

async fn members_of(
    state: &AppState,
    scope: &Scope,
    inherited: bool,
) -> ApiResult<Vec<berth_db::members::Member>> {
    let c = &state.db.read;
    Ok(if inherited {
        let project = (scope.kind == "project").then_some(scope.id);
        berth_db::members::list_inherited(c, project, &scope.chain, Utc::now()).await?
    } else {
        berth_db::members::list_direct(c, scope.source()).await?
    })
}

/// `GET …/members` (direct) and `GET …/members/all` (inherited, highest level wins).
async fn list_members(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
    kind: &'static str,
    inherited: bool,
) -> ApiResult<Response> {
    caller.require_read()?;
    let page = p.page()?;
    let scope = Scope::resolve(&state, &caller, kind, &id).await?;
    let query = p.str("query")?.map(|q| q.to_lowercase());
    let items = members_of(&state, &scope, inherited)
        .await?
        .into_iter()
        .filter(|(_, u)| {
            query.as_ref().is_none_or(|q| {
                u.username.to_lowercase().contains(q) || u.name.to_lowercase().contains(q)
            })
        })
        .map(|(m, u)| member_json(&state, &m, &u))
        .collect();
    Ok(paged_vec(&state, &uri, page, items))
}

fn user_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::NotFound("Member"))
}

/// `GET …/members/:user_id` and `GET …/members/all/:user_id`.
async fn get_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, uid)): Path<(String, String)>,
    kind: &'static str,
    inherited: bool,
) -> ApiResult<Json<Value>> {
    caller.require_read()?;
    let scope = Scope::resolve(&state, &caller, kind, &id).await?;
    let uid = user_id(&uid)?;
    members_of(&state, &scope, inherited)
        .await?
        .into_iter()
        .find(|(m, _)| m.user_id == uid)
        .map(|(m, u)| Json(member_json(&state, &m, &u)))
        .ok_or(ApiError::NotFound("Member"))
}

fn level(p: &Params, required: bool) -> ApiResult<Option<Role>> {
    match p.int("access_level")? {
        None if required => Err(ApiError::BadRequest("access_level is missing".into())),
        None => Ok(None),
        Some(l) => i32::try_from(l)
            .ok()
            .and_then(Role::from_level)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest("access_level does not have a valid value".into())),
    }
}

/// Only Owners touch Owner memberships.
fn may_touch(scope: &Scope, level: i32) -> ApiResult<()> {
    if level >= Role::Owner.level() && scope.role < Some(Role::Owner) {
        Err(ApiError::Forbidden)
    } else {
        Ok(())
    }
}

/// Begin the write transaction of a change to `scope`'s members, holding its project or
/// group row until the commit ([`berth_db::members::lock_source`]), so that the checks of
/// [`keeps_owner`] and the change they allow are one step for concurrent requests too; and
/// read the caller's role again under that lock, so a role the caller lost to a concurrent
/// change (an Owner demoted a moment ago) is the one that counts, then require `min`.
async fn begin_member_change(
    state: &AppState,
    caller: &Caller,
    scope: &mut Scope,
    min: Option<Role>,
) -> ApiResult<sea_orm::DatabaseTransaction> {
    let txn = state.db.begin_write().await?;
    let missing = if scope.kind == "project" {
        "Project"
    } else {
        "Group"
    };
    if !berth_db::members::lock_source(&txn, scope.source()).await? {
        return Err(ApiError::NotFound(missing));
    }
    let id = scope.id.to_string();
    scope.role = if scope.kind == "project" {
        let ctx = lookup::project(&txn, &id).await?;
        lookup::project_role(&txn, Some(caller), &ctx).await?
    } else {
        let g = lookup::group(&txn, &id).await?;
        lookup::group_role(&txn, Some(caller), &g).await?
    };
    if min.is_some_and(|min| scope.role < Some(min)) {
        return Err(ApiError::Forbidden);
    }
    Ok(txn)
}

/// Refuse a change that takes Ownership away from `m` (a demotion below Owner, a removal,
/// or an expiry set on an Owner) when it would break what always holds: a group keeps at
/// least one unexpired direct Owner, and the owner of a personal namespace stays the Owner
/// of its projects (the namespace is theirs, so neither they nor anyone else may demote or
/// remove them there). Runs inside the changing transaction, after
/// [`begin_member_change`] locked the project or group.
async fn keeps_owner(
    c: &impl sea_orm::ConnectionTrait,
    scope: &Scope,
    m: &members::Model,
) -> ApiResult<()> {
    if scope.kind == "group" {
        if m.access_level >= Role::Owner.level()
            && berth_db::members::count_others_at_level(
                c,
                scope.source(),
                Role::Owner.level(),
                m.user_id,
                Utc::now(),
            )
            .await?
                == 0
        {
            return Err(ApiError::BadRequest(
                "A group must have at least one owner".into(),
            ));
        }
        return Ok(());
    }
    let project = berth_db::access::project_by_id(c, scope.id)
        .await?
        .ok_or(ApiError::NotFound("Project"))?;
    let namespace = berth_db::namespaces::by_id(c, project.namespace_id).await?;
    if namespace.is_some_and(|ns| ns.kind == "user" && ns.owner_user_id == Some(m.user_id)) {
        return Err(ApiError::BadRequest(
            "The owner of a personal project cannot be demoted or removed: it is their namespace"
                .into(),
        ));
    }
    Ok(())
}

/// `POST …/members`: `user_id` (or `username`), `access_level`, `expires_at`.
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
    kind: &'static str,
) -> ApiResult<Response> {
    caller.require_write()?;
    let scope = Scope::with_role(&state, &caller, kind, &id, Role::Maintainer).await?;
    let role = level(&p, true)?.unwrap_or(Role::Guest);
    may_touch(&scope, role.level())?;
    let expires_at = p.date("expires_at")?.flatten();
    let user = match (p.int("user_id")?, p.str("username")?) {
        (Some(uid), _) => berth_db::users::by_id(&state.db.read, uid).await?,
        (None, Some(name)) => berth_db::access::user_by_login(&state.db.read, &name).await?,
        (None, None) => return Err(ApiError::BadRequest("user_id is missing".into())),
    }
    .ok_or(ApiError::NotFound("User"))?;
    // A membership elsewhere would give a bot nothing (its role outside its home is none)
    // and would only mislead whoever reads the member list.
    if !scope.reaches(&user) {
        return Err(ApiError::BadRequest(
            "a project or group access token's bot can only be a member of its own project or group".into(),
        ));
    }
    let txn = state.db.begin_write().await?;
    if berth_db::members::get(&txn, scope.source(), user.id)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict("Member already exists".into()));
    }
    let m = match berth_db::members::add(&txn, scope.source(), user.id, role.level(), expires_at)
        .await
    {
        Ok(m) => m,
        Err(e) if berth_db::is_unique_violation(&e) => {
            return Err(ApiError::Conflict("Member already exists".into()));
        }
        Err(e) => return Err(e.into()),
    };
    txn.commit().await?;
    tracing::info!(
        user.id = user.id,
        access_level = m.access_level,
        "added {kind} member"
    );
    Ok((StatusCode::CREATED, Json(member_json(&state, &m, &user))).into_response())
}

/// `PUT …/members/:user_id`: `access_level`, `expires_at`.
async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, uid)): Path<(String, String)>,
    p: Params,
    kind: &'static str,
) -> ApiResult<Json<Value>> {
    caller.require_write()?;
    let mut scope = Scope::with_role(&state, &caller, kind, &id, Role::Maintainer).await?;
    let uid = user_id(&uid)?;
    let role = level(&p, true)?;
    let expires_at = p.date("expires_at")?;
    let txn = begin_member_change(&state, &caller, &mut scope, Some(Role::Maintainer)).await?;
    let m = berth_db::members::get(&txn, scope.source(), uid)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    may_touch(&scope, m.access_level)?;
    if let Some(r) = role {
        may_touch(&scope, r.level())?;
    }
    let owner = Role::Owner.level();
    let demoted = role.is_some_and(|r| r.level() < m.access_level);
    // An expiry set on an Owner ends their ownership too, only later.
    let expiring = m.access_level >= owner
        && role.is_none_or(|r| r.level() >= owner)
        && matches!(expires_at, Some(Some(_)));
    if demoted || expiring {
        keeps_owner(&txn, &scope, &m).await?;
    }
    let m = berth_db::members::update(&txn, m, role.map(Role::level), expires_at).await?;
    txn.commit().await?;
    let user = berth_db::users::by_id(&state.db.read, uid)
        .await?
        .ok_or(ApiError::NotFound("User"))?;
    Ok(Json(member_json(&state, &m, &user)))
}

/// `DELETE …/members/:user_id`: Maintainers remove others, anyone leaves; 204.
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, uid)): Path<(String, String)>,
    kind: &'static str,
) -> ApiResult<StatusCode> {
    caller.require_write()?;
    let uid = user_id(&uid)?;
    let mut scope = Scope::resolve(&state, &caller, kind, &id).await?;
    let leaving = uid == caller.user().id;
    let min = (!leaving).then_some(Role::Maintainer);
    if min.is_some_and(|min| scope.role < Some(min)) {
        return Err(ApiError::Forbidden);
    }
    let txn = begin_member_change(&state, &caller, &mut scope, min).await?;
    let m = berth_db::members::get(&txn, scope.source(), uid)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    if !leaving {
        may_touch(&scope, m.access_level)?;
    }
    keeps_owner(&txn, &scope, &m).await?;
    berth_db::members::remove(&txn, m.id).await?;
    txn.commit().await?;
    tracing::info!(user.id = uid, "removed {kind} member");
    Ok(StatusCode::NO_CONTENT)
}
